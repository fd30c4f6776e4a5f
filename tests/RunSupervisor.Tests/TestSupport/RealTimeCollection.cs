using Xunit;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// Real-time tests that load the machine on purpose (a starved thread pool): run on their own, after the parallel
/// tests, so that neither disturbs the other's timing.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RealTimeCollection
{
    public const string Name = "Real time, run alone";
}
