using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.MultiProcess;

/// <summary>Two host processes on the in-process Garnet, in real time (a few seconds each).</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetMultiProcessRealTimeTests(GarnetServerFixture server, ITestOutputHelper output)
{
    [Fact]
    public Task StartAsync_OwnerProcessKilled_OtherProcessTakesOverAfterTtlWithLargerTokenAndIsOwedItsHeartbeat()
        => MultiProcessScenarios.OwnerKilledAsync(server, output);

    [Fact]
    public Task RunningRun_ServerRestartedMidRun_EndsLeaseLostWithinValidityAndNextStartWorks()
        => MultiProcessScenarios.ServerRestartedAsync(server, output);
}
