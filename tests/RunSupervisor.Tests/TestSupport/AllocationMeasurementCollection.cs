using Xunit;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// Tests that measure what this thread allocates while runs start and end: run on their own, after the parallel tests.
/// The run activity source and a meter's name are process-wide, so an <c>ActivityListener</c> or <c>MeterListener</c>
/// in a test running alongside would make every measured run allocate its activity or its recorded measurements (seen
/// as two to five times the budget when many tests run at once).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationMeasurementCollection
{
    public const string Name = "Allocation measurements, run alone";
}
