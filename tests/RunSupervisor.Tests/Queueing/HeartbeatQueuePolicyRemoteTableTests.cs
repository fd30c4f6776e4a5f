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

    [Fact]
    public async Task ResolveAsync_ResetWhileAnotherHostRuns_RunsNowWithTheResetReason()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        using RunHandle remote = await a.Registry.StartAsync(Session);

        // Collect mode would enqueue: only the reset flag makes it run now.
        QueueDecision decision = await policy.ResolveAsync(new QueueRequest(Session, IsHeartbeat: false, QueueMode.Collect, ResetTriggered: true));

        decision.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset));
    }

    [Fact]
    public async Task ResolveAsync_FollowupWantedWhileAnotherHostRuns_EnqueuesWithTheFollowupReason()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        using RunHandle remote = await a.Registry.StartAsync(Session);

        // Interrupt mode would run now: the host's wish for a follow-up takes precedence over the mode.
        QueueDecision decision = await policy.ResolveAsync(new QueueRequest(Session, IsHeartbeat: false, QueueMode.Interrupt, ShouldFollowup: true));

        decision.Should().Be(new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup));
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
