using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// A heartbeat whose run changes between the policy's lock-free lookup and the moment it counts the drop: a run
/// replaced in that gap still makes it a drop (the session stayed busy), and a run that ended and left the session
/// idle makes it run now rather than a drop nobody would ever owe. And a session taken again between a run's end and the
/// policy's notification of it owes its heartbeats when that newer run (or waiting start) leaves, not while it holds the session.
/// </summary>
/// <remarks>
/// The gap is held open by taking the policy's drop lock on the test thread: the heartbeat's thread does its lookup,
/// then blocks on the lock until the test has changed the session.
/// </remarks>
public sealed class HeartbeatQueuePolicyInterleavingTests
{
    private const string Session = "s1";

    [Fact]
    public void Resolve_RunSupersededBetweenLookupAndCount_StillDropsAsBusy()
    {
        using var p = new PolicyFixture();
        using RunHandle first = p.Registry.Start(Session);

        (QueueDecision decision, RunHandle? second) = ResolveWhileHeld(p, () => p.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }));

        decision.Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileBusy), "the session never became idle: the newer run keeps it busy");
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(1);
        second!.Dispose();
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1, "the drop is owed when the newer run ends");
    }

    [Fact]
    public void Resolve_RunReleasedBetweenLookupAndCount_RunsNowInsteadOfAnUnowedDrop()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);

        (QueueDecision decision, _) = ResolveWhileHeld(p, () =>
        {
            run.Dispose();
            return null;
        });

        // The release's end notification has already run and found nothing to owe: a drop counted now would never be owed.
        decision.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
        p.Owed.Should().BeEmpty();
    }

    [Fact]
    public void HeartbeatOwed_AnotherRunTakesTheSessionBetweenTheEndAndItsNotification_OwedWhenThatRunEndsNotBefore()
    {
        using var p = new PolicyFixture();
        RunHandle first = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);
        RunHandle? second = null;
        bool? busyWhenOwed = null;

        // The registry raises RunEnded before it tells the policy: a start made there takes the idle session first.
        p.Registry.RunEnded += (_, _) => second ??= p.Registry.Start(Session);
        p.Policy.HeartbeatOwed += (_, _) => busyWhenOwed = p.Registry.IsActive(Session);

        first.Dispose();

        second.Should().NotBeNull();
        p.Owed.Should().BeEmpty("the owed heartbeat would only be dropped again while the newer run holds the session");
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(2);
        p.Heartbeat(Session).Action.Should().Be(QueueAction.Drop);

        second!.Dispose();

        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(3, "owed once, when the session is idle, with every drop");
        busyWhenOwed.Should().BeFalse();
    }

    [Fact]
    public async Task HeartbeatOwed_AStartQueuesForTheSessionBetweenTheEndAndItsNotification_OwedWhenThatStartLeaves()
    {
        var options = new RunSupervisorOptions();
        options.Lanes["cron"] = 1;
        using var p = new PolicyFixture(options);
        using RunHandle cronHolder = p.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        RunHandle first = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);
        using var giveUp = new CancellationTokenSource();
        ValueTask<RunHandle>? waiting = null;

        // Made while the session is idle, the start waits for its cron slot: the session is not idle for a heartbeat.
        p.Registry.RunEnded += (_, _) => waiting ??= p.Registry.StartAsync(Session, new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait }, giveUp.Token);

        first.Dispose();

        waiting!.Value.IsCompleted.Should().BeFalse();
        p.Owed.Should().BeEmpty();
        await giveUp.CancelAsync();
        await FluentActions.Awaiting(async () => await waiting.Value).Should().ThrowAsync<OperationCanceledException>();
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1);
    }

    /// <summary>Resolves a heartbeat on another thread, runs <paramref name="change"/> once that thread waits for the drop lock, then lets it go.</summary>
    private static (QueueDecision Decision, RunHandle? Handle) ResolveWhileHeld(PolicyFixture p, Func<RunHandle?> change)
    {
        Lock dropsLock = p.Policy.DropsLock;
        QueueDecision decision = default;
        RunHandle? handle;
        var heartbeat = new Thread(() => decision = p.Heartbeat(Session)) { IsBackground = true };
        dropsLock.Enter();
        try
        {
            heartbeat.Start();
            SpinWait.SpinUntil(() => (heartbeat.ThreadState & ThreadState.WaitSleepJoin) != 0, TestTime.HangGuard).Should().BeTrue("the heartbeat must reach the drop lock");
            handle = change();
        }
        finally
        {
            dropsLock.Exit();
        }

        heartbeat.Join(TestTime.HangGuard).Should().BeTrue();
        return (decision, handle);
    }
}
