using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// <see cref="HeartbeatQueuePolicy.ResolveAsync"/> for a session another host runs: messages follow the same decision
/// table as for a session busy here, and a dropped heartbeat is counted on the meter and logged like a local drop.
/// </summary>
public sealed class HeartbeatQueuePolicyRemoteTableTests
{
    private const string Session = "s1";

    public static TheoryData<QueueMode, bool, bool> MessageRows()
    {
        var data = new TheoryData<QueueMode, bool, bool>();
        foreach (QueueMode mode in Enum.GetValues<QueueMode>())
        {
            foreach (bool reset in new[] { false, true })
            {
                foreach (bool followup in new[] { false, true })
                {
                    data.Add(mode, reset, followup);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(MessageRows))]
    public async Task ResolveAsync_MessageWhileAnotherHostRuns_FollowsTheBusyTable(QueueMode mode, bool reset, bool followup)
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        using RunHandle remote = await a.Registry.StartAsync(Session);

        QueueDecision decision = await policy.ResolveAsync(new QueueRequest(Session, IsHeartbeat: false, mode, ResetTriggered: reset, ShouldFollowup: followup));

        // Written out rather than derived from the policy, as for a session busy here: a reset runs now whatever the
        // mode (Collect alone would enqueue); the host's wish for a follow-up comes next and enqueues even in Interrupt
        // mode; then every mode that queues enqueues, and only Interrupt runs now.
        QueueDecision expected = (reset, followup, mode) switch
        {
            (true, _, _) => new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset),
            (false, true, _) => new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup),
            (false, false, QueueMode.Steer or QueueMode.SteerBacklog or QueueMode.Followup or QueueMode.Collect)
                => new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.QueueMode),
            (false, false, QueueMode.Interrupt) => new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Interrupt),
            _ => throw new InvalidOperationException($"A new QueueMode {mode} needs a row in this test."),
        };
        decision.Should().Be(expected);
        policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public async Task ResolveAsync_HeartbeatDroppedForAnotherHost_CountedOnTheMeterAndLogged()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var loggerProvider = new FakeLoggerProvider();
        using var loggerFactory = new LoggerFactory([loggerProvider]);
        using var policy = new HeartbeatQueuePolicy(b.Registry, loggerFactory.CreateLogger<HeartbeatQueuePolicy>());
        using var dropped = new MetricCollector<long>(b.Registry.Metrics.HeartbeatsDropped);
        using RunHandle remote = await a.Registry.StartAsync(Session);

        await policy.ResolveAsync(new QueueRequest(Session, IsHeartbeat: true));
        await policy.ResolveAsync(new QueueRequest(Session, IsHeartbeat: true));

        dropped.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);
        FakeLogRecord[] lines = loggerProvider.Collector.GetSnapshot().Where(r => r.Id.Name == "HeartbeatDropped").ToArray();
        lines.Should().HaveCount(2);
        lines.Select(r => r.Id.Id).Should().AllBeEquivalentTo(10);
        lines.Select(r => (r.GetStructuredStateValue("SessionId"), r.GetStructuredStateValue("Reason"), r.GetStructuredStateValue("DroppedHeartbeats")))
            .Should().Equal((Session, QueueDecisionReasons.HeartbeatWhileRemote, "1"), (Session, QueueDecisionReasons.HeartbeatWhileRemote, "2"));
    }
}
