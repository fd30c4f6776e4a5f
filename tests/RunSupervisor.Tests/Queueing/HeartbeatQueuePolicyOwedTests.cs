using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// Dropped heartbeats are never silent: each drop is logged and counted per session, and
/// <see cref="HeartbeatQueuePolicy.HeartbeatOwed"/> is raised once, with the count, for every way a session becomes
/// idle, even when a subscriber throws.
/// </summary>
public sealed class HeartbeatQueuePolicyOwedTests
{
    private const string Session = "s1";

    // ---- Every drop logged and counted per session ----

    [Fact]
    public void Resolve_DropsOnTwoSessions_EachLoggedWithEventId10AndCountedPerSession()
    {
        using var p = new PolicyFixture();
        using RunHandle a = p.Registry.Start("a");
        using RunHandle b = p.Registry.Start("b");

        p.DropHeartbeats("a", 3);
        p.DropHeartbeats("b", 1);

        p.Policy.GetDroppedHeartbeats("a").Should().Be(3);
        p.Policy.GetDroppedHeartbeats("b").Should().Be(1);
        p.Policy.GetDroppedHeartbeats("never-seen").Should().Be(0);

        FakeLogRecord[] drops = [.. p.F.LogsWithEvent("HeartbeatDropped")];
        drops.Should().HaveCount(4).And.OnlyContain(r => r.Id.Id == 10 && r.Level == LogLevel.Information);

        // Each line carries the running count of its own session, so one line answers "how many so far?".
        drops.Select(r => (r.GetStructuredStateValue("SessionId"), r.GetStructuredStateValue("DroppedHeartbeats")))
            .Should().Equal(("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"));
    }

    [Fact]
    public void HeartbeatOwed_OneOfTwoBusySessionsBecomesIdle_RaisedOnlyForThatSession()
    {
        using var p = new PolicyFixture();
        RunHandle a = p.Registry.Start("a");
        using RunHandle b = p.Registry.Start("b");
        p.DropHeartbeats("a", 2);
        p.DropHeartbeats("b", 5);

        a.Dispose();

        p.Owed.Should().ContainSingle().Which.Should().BeEquivalentTo(new { SessionId = "a", DroppedHeartbeats = 2 });
        p.Policy.GetDroppedHeartbeats("a").Should().Be(0);
        p.Policy.GetDroppedHeartbeats("b").Should().Be(5, "b is still busy; a's end must not touch its count");
    }

    // ---- HeartbeatOwed once, with the count, for every way a session becomes idle ----

    [Theory]
    [MemberData(nameof(IdleTransitions.AllThatOweAHeartbeat), MemberType = typeof(IdleTransitions))]
    public async Task HeartbeatOwed_SessionWithDropsBecomesIdle_RaisedOnceWithCountAndCountResets(IdleTransition how)
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 3);
        p.Owed.Should().BeEmpty("nothing is owed while the run is still active");

        RunEndReason expectedReason = IdleTransitions.End(p, run, how);

        (await run.Completion.WaitAsync(TimeSpan.FromSeconds(10))).Should().Be(expectedReason);
        p.Owed.Should().ContainSingle().Which.Should().BeEquivalentTo(new { SessionId = Session, DroppedHeartbeats = 3 });
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
        FakeLogRecord owedLine = p.F.LogsWithEvent("HeartbeatOwed").Should().ContainSingle().Subject;
        owedLine.Id.Id.Should().Be(11);
        owedLine.GetStructuredStateValue("DroppedHeartbeats").Should().Be("3");

        // Later ends of the same run (a late Dispose) must not raise it a second time.
        run.Dispose();
        p.Owed.Should().ContainSingle();
    }

    [Theory]
    [MemberData(nameof(IdleTransitions.All), MemberType = typeof(IdleTransitions))]
    public async Task HeartbeatOwed_NothingDropped_NotRaised(IdleTransition how)
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);

        RunEndReason expectedReason = IdleTransitions.End(p, run, how);

        (await run.Completion.WaitAsync(TimeSpan.FromSeconds(10))).Should().Be(expectedReason);
        p.Owed.Should().BeEmpty();
        p.F.LogsWithEvent("HeartbeatOwed").Should().BeEmpty();
    }

    [Fact]
    public async Task HeartbeatOwed_RegistryDisposedWithDrops_NotRaised()
    {
        // The decision of commit 396bc46: the registry's disposal ends every run (reason Aborted) but owes no
        // heartbeat, because a host reacting to it would call back into the disposed registry.
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        p.Registry.Dispose();

        (await run.Completion.WaitAsync(TimeSpan.FromSeconds(10))).Should().Be(RunEndReason.Aborted);
        p.F.Ended.Should().ContainSingle("the run itself did end, once");
        p.Owed.Should().BeEmpty();
        p.F.LogsWithEvent("HeartbeatOwed").Should().BeEmpty();
    }

    [Fact]
    public void HeartbeatOwed_AfterHandleDisposeReturns_AlreadyRaised()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);

        run.Dispose();

        // No await in between: the policy raises it from inside the registry's synchronous RunEnded notification.
        p.Owed.Should().ContainSingle();
    }

    [Fact]
    public void HeartbeatOwed_AfterAdvanceReachesEviction_AlreadyRaised()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);
        p.DropHeartbeats(Session, 2);

        p.Time.Advance(p.F.Options.RunTimeout + p.F.Options.GracePeriod - TimeSpan.FromTicks(1));
        p.Owed.Should().BeEmpty("one tick before the eviction instant the zombie still owns the session");

        p.Time.Advance(TimeSpan.FromTicks(1));
        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(2);
    }

    [Fact]
    public void HeartbeatOwed_WhenRaised_SessionIsIdleAndCompletionNotYetCompleted()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);
        bool? activeInHandler = null;
        bool? completionDoneInHandler = null;
        p.Policy.HeartbeatOwed += (_, _) =>
        {
            activeInHandler = p.Registry.IsActive(Session);
            completionDoneInHandler = run.Completion.IsCompleted;
        };

        run.Dispose();

        // The documented order: the entry is gone first, then RunEnded (and so HeartbeatOwed), then Completion.
        activeInHandler.Should().BeFalse();
        completionDoneInHandler.Should().BeFalse();
        run.Completion.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public void HeartbeatOwed_SecondRunAfterOwed_CountsFromZeroAndIsOwedAgain()
    {
        using var p = new PolicyFixture();
        RunHandle first = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 4);
        first.Dispose();

        // A run with no drops in between: nothing more is owed.
        p.Registry.Start(Session).Dispose();
        p.Owed.Should().ContainSingle();

        RunHandle third = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(1, "the count restarted when the first owed heartbeat was signalled");
        third.Dispose();

        p.Owed.Select(e => e.DroppedHeartbeats).Should().Equal(4, 1);
    }

    [Fact]
    public async Task HeartbeatOwed_RunSuperseded_NotRaisedUntilReplacementEndsThenWithCombinedCount()
    {
        using var p = new PolicyFixture();
        RunHandle old = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        RunHandle replacement = p.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        // The old run's end leaves the session busy with the replacement: no heartbeat can run yet.
        old.Completion.IsCompleted.Should().BeTrue();
        (await old.Completion).Should().Be(RunEndReason.Superseded);
        p.Owed.Should().BeEmpty();
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(2);

        p.DropHeartbeats(Session, 1);
        old.Dispose();
        p.Owed.Should().BeEmpty("the old run's late release is stale and the replacement still owns the session");

        replacement.Dispose();

        p.Owed.Should().ContainSingle().Which.Should().BeEquivalentTo(new { SessionId = Session, DroppedHeartbeats = 3 });
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void HeartbeatOwed_DropsWhileIdleWithQueuedFollowups_OwedWhenTheFollowupRunEnds()
    {
        using var p = new PolicyFixture();

        // Ported semantics: queued follow-ups make a heartbeat drop even on an idle session.
        p.Heartbeat(Session, hasQueuedFollowups: true).Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileQueued));
        p.Owed.Should().BeEmpty("no run ended, so nothing signals the session became idle");

        // The host runs the queued follow-up; when it ends the dropped heartbeat is owed.
        RunHandle followup = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);
        followup.Dispose();

        p.Owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(2);
    }

    // ---- HeartbeatOwed: a throwing subscriber ----

    [Fact]
    public async Task HeartbeatOwed_SubscriberThrows_LoggedOtherSubscribersRunRegistryConsistent()
    {
        using var p = new PolicyFixture();
        var boom = new InvalidOperationException("subscriber bug");
        var afterThrower = new List<int>();

        // The fixture's recorder subscribed first; the thrower sits between it and a later subscriber.
        p.Policy.HeartbeatOwed += (_, _) => throw boom;
        p.Policy.HeartbeatOwed += (_, e) => afterThrower.Add(e.DroppedHeartbeats);
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        Action release = run.Dispose;

        release.Should().NotThrow();
        p.Owed.Should().ContainSingle();
        afterThrower.Should().Equal(2);

        FakeLogRecord failure = p.F.LogsWithEvent("CallbackFailed").Should().ContainSingle().Subject;
        failure.Id.Id.Should().Be(14);
        failure.Level.Should().Be(LogLevel.Error);
        failure.Exception.Should().BeSameAs(boom);
        failure.GetStructuredStateValue("Callback").Should().Be("HeartbeatOwed");
        failure.GetStructuredStateValue("SessionId").Should().Be(Session);

        // Registry and policy are consistent: the run ended once, the session is free, the count reset.
        run.Completion.IsCompletedSuccessfully.Should().BeTrue();
        (await run.Completion).Should().Be(RunEndReason.Completed);
        p.F.Ended.Should().ContainSingle();
        p.Registry.IsActive(Session).Should().BeFalse();
        p.Registry.ActiveCount.Should().Be(0);
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
        p.Heartbeat(Session).Action.Should().Be(QueueAction.RunNow);
        using RunHandle next = p.Registry.Start(Session);
        next.IsCurrent.Should().BeTrue();
    }

}
