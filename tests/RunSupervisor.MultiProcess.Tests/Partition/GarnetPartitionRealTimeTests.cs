using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.Partition;

/// <summary>A partition between one host and the in-process Garnet, in real time (a few seconds each).</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetPartitionRealTimeTests(GarnetServerFixture server, ITestOutputHelper output)
{
    [Fact]
    public Task LeasedRun_OwnerCutOffFromServer_EndsLeaseLostBeforeTheServerExpiresTheLeaseThenOtherHostTakesOver()
        => PartitionScenarios.CutOffOwnerAsync(server, output);

    [Fact]
    public Task FencedAppend_PausedOldOwnerWritesAfterTakeover_IsRefusedAndNewOwnersWritesAreKept()
        => PartitionScenarios.PausedOldOwnerWritesAsync(server, output);
}
