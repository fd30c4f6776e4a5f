using RunSupervisor.Leasing;
using RunSupervisor.MultiProcess.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.Regressions;

/// <summary>
/// <c>HeartbeatOwed</c> across hosts must wait until the session is idle cluster-wide. A start that the store refuses
/// because another host holds the session is withdrawn from the local table, and that withdrawal must not count as the
/// session becoming idle.
/// </summary>
public sealed class HeartbeatOwedAcrossHostsTests
{
    [Fact]
    public async Task HeartbeatOwed_StartRefusedWhileAnotherHostHoldsTheSession_IsNotRaised()
    {
        var store = new InMemoryRunLeaseStore();
        using var a = new ActiveRunRegistry(LeaseSettings.Options("A"), leaseStore: store);
        using var b = new ActiveRunRegistry(LeaseSettings.Options("B"), leaseStore: store);
        using var policy = new HeartbeatQueuePolicy(b);
        var owed = new List<HeartbeatOwedEventArgs>();
        policy.HeartbeatOwed += (_, e) =>
        {
            lock (owed)
            {
                owed.Add(e);
            }
        };
        await using RunHandle held = await a.StartAsync("s");
        QueueDecision dropped = await policy.ResolveAsync(new QueueRequest("s", IsHeartbeat: true));
        dropped.Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileRemote);

        Func<Task> start = async () => await b.StartAsync("s");

        (await start.Should().ThrowAsync<SessionBusyException>()).Which.OwnerHostId.Should().Be("A");
        lock (owed)
        {
            owed.Should().BeEmpty("host A still runs the session, so it is not idle cluster-wide");
        }

        policy.GetDroppedHeartbeats("s").Should().Be(1, "the dropped heartbeat is still owed, not paid");
    }
}
