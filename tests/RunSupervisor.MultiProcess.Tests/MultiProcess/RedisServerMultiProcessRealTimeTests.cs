using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.MultiProcess;

/// <summary>Two host processes on a child redis-server, in real time; skipped without redis-server, failed without it in CI.</summary>
[Collection(RedisServerCollection.Name)]
public sealed class RedisServerMultiProcessRealTimeTests(RedisServerFixture server, ITestOutputHelper output)
{
    [RedisServerFact]
    public Task StartAsync_OwnerProcessKilled_OtherProcessTakesOverAfterTtlWithLargerTokenAndIsOwedItsHeartbeat()
        => MultiProcessScenarios.OwnerKilledAsync(server, output);

    [RedisServerFact]
    public Task RunningRun_ServerRestartedMidRun_EndsLeaseLostWithinValidityAndNextStartWorks()
        => MultiProcessScenarios.ServerRestartedAsync(server, output);
}
