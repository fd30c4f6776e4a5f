using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Queueing;

/// <summary>Starts waiting in the registry are queued follow-ups to the heartbeat policy.</summary>
public sealed class HeartbeatQueuePolicyAdmissionTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait };

    [Fact]
    public async Task HeartbeatOwed_RunEndsAndAWaiterIsAdmitted_WaitsUntilTheSessionIsIdleWithAnEmptyQueue()
    {
        using var p = new PolicyFixture();
        RunHandle first = p.Registry.Start(Session);
        ValueTask<RunHandle> waiting = p.Registry.StartAsync(Session, Wait);
        p.DropHeartbeats(Session, 2);

        first.Dispose();
        RunHandle second = await waiting;

        p.Owed.Should().BeEmpty("the admitted start keeps the session busy");
        p.DropHeartbeats(Session, 1);
        second.Dispose();
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(3, "drops across runs chained by queued starts count together");
    }

    [Fact]
    public async Task Resolve_SessionFreeButAStartWaitsForALane_DropsTheHeartbeatAsQueuedAndOwesItWhenTheWaiterGivesUp()
    {
        var options = new RunSupervisorOptions { MaxActiveRuns = 1 };
        using var p = new PolicyFixture(options);
        using RunHandle other = p.Registry.Start("other");
        ValueTask<RunHandle> waiting = p.Registry.StartAsync(Session, new RunStartOptions { QueueTimeout = TimeSpan.FromSeconds(10) });

        QueueDecision decision = p.Heartbeat(Session);

        decision.Action.Should().Be(QueueAction.Drop);
        decision.Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileQueued);
        p.Time.Advance(TimeSpan.FromSeconds(10));
        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<RunQueueTimeoutException>();
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1);
        p.Heartbeat(Session).Action.Should().Be(QueueAction.RunNow);
    }

    [Fact]
    public async Task HeartbeatOwed_AFullQueuePushesItsOldestStartOutForANewOne_NotOwedWhileTheNewOneWaits()
    {
        var options = new RunSupervisorOptions { MaxActiveRuns = 1, MaxQueuedPerSession = 1, QueueOverflow = QueueOverflowBehavior.CancelOldest };
        using var p = new PolicyFixture(options);
        RunHandle other = p.Registry.Start("other");
        ValueTask<RunHandle> oldest = p.Registry.StartAsync(Session);
        p.DropHeartbeats(Session, 1);

        ValueTask<RunHandle> newest = p.Registry.StartAsync(Session);

        await FluentActions.Awaiting(async () => await oldest).Should().ThrowAsync<RunQueueFullException>();
        p.Owed.Should().BeEmpty("the start that took the pushed-out one's place keeps the session queued");
        other.Dispose();
        (await newest).Dispose();
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1);
    }
}
