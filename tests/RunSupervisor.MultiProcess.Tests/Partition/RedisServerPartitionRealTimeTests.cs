using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.Partition;

/// <summary>A partition between one host and a child redis-server, in real time; skipped without redis-server, failed without it in CI.</summary>
[Collection(RedisServerCollection.Name)]
public sealed class RedisServerPartitionRealTimeTests(RedisServerFixture server, ITestOutputHelper output)
{
    [RedisServerFact]
    public Task LeasedRun_OwnerCutOffFromServer_EndsLeaseLostBeforeTheServerExpiresTheLeaseThenOtherHostTakesOver()
        => PartitionScenarios.CutOffOwnerAsync(server, output);

    [RedisServerFact]
    public Task FencedAppend_PausedOldOwnerWritesAfterTakeover_IsRefusedAndNewOwnersWritesAreKept()
        => PartitionScenarios.PausedOldOwnerWritesAsync(server, output);
}
