using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests;

/// <summary>
/// The DESIGN.md queue-policy table for every row and mode, drop
/// logging and per-session counting, and the "heartbeat owed" signal for every way a session becomes idle.
/// </summary>
public sealed class HeartbeatQueuePolicyTests
{
    private const string Session = "s1";

    private static readonly QueueMode[] AllModes = Enum.GetValues<QueueMode>();

    private static readonly bool[] Bools = [false, true];

    /// <summary>The three ways a session is "not idle-and-empty": busy, idle with queued follow-ups, or both.</summary>
    private static readonly (bool Busy, bool Queued)[] NotIdleStates = [(true, false), (false, true), (true, true)];

    // ---- The decision table, row by row, over every mode and every flag that must not matter ----

    public static TheoryData<QueueMode, bool, bool, bool> IdleRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach (bool heartbeat in Bools)
            {
                foreach (bool reset in Bools)
                {
                    foreach (bool followup in Bools)
                    {
                        data.Add(mode, heartbeat, reset, followup);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(IdleRows))]
    public void Resolve_IdleAndNothingQueued_RunsNowWhateverTheOtherFlags(QueueMode mode, bool heartbeat, bool reset, bool followup)
    {
        using var p = new PolicyFixture();

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, heartbeat, mode, HasQueuedFollowups: false, reset, followup));

        decision.Should().Be(new QueueDecision(QueueAction.RunNow, "session idle"));
        decision.Reason.Should().Be(QueueDecisionReasons.Idle);
        AssertNothingDropped(p);
    }

    public static TheoryData<QueueMode, bool, bool, bool, bool> HeartbeatRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                foreach (bool reset in Bools)
                {
                    foreach (bool followup in Bools)
                    {
                        data.Add(mode, busy, queued, reset, followup);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(HeartbeatRows))]
    public void Resolve_HeartbeatWhileBusyOrQueued_DropsLogsAndCounts(QueueMode mode, bool busy, bool queued, bool reset, bool followup)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: true, mode, queued, reset, followup));

        // The heartbeat row comes before reset/follow-up/mode: none of them can rescue a heartbeat.
        string expectedReason = queued ? QueueDecisionReasons.HeartbeatWhileQueued : QueueDecisionReasons.HeartbeatWhileBusy;
        decision.Should().Be(new QueueDecision(QueueAction.Drop, expectedReason));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(1);
        FakeLogRecord line = p.F.LogsWithEvent("HeartbeatDropped").Should().ContainSingle().Subject;
        line.Id.Id.Should().Be(10);
        line.GetStructuredStateValue("Reason").Should().Be(expectedReason);
    }

    public static TheoryData<QueueMode, bool, bool, bool> ResetRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                foreach (bool followup in Bools)
                {
                    data.Add(mode, busy, queued, followup);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ResetRows))]
    public void Resolve_ResetWhileBusyOrQueued_RunsNowBeforeFollowupOrMode(QueueMode mode, bool busy, bool queued, bool followup)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued, ResetTriggered: true, followup));

        decision.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset));
        AssertNothingDropped(p);
    }

    public static TheoryData<QueueMode, bool, bool> NotIdleRowsPerMode()
    {
        var data = new TheoryData<QueueMode, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                data.Add(mode, busy, queued);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(NotIdleRowsPerMode))]
    public void Resolve_FollowupRequestedWhileBusyOrQueued_EnqueuesInEveryModeIncludingInterrupt(QueueMode mode, bool busy, bool queued)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued, ResetTriggered: false, ShouldFollowup: true));

        decision.Should().Be(new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup));
        AssertNothingDropped(p);
    }

    [Theory]
    [MemberData(nameof(NotIdleRowsPerMode))]
    public void Resolve_PlainMessageWhileBusyOrQueued_EnqueuesForQueueingModesAndRunsNowForInterrupt(QueueMode mode, bool busy, bool queued)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued));

        // Written out from the DESIGN.md table rather than derived: Steer, SteerBacklog, Followup and Collect
        // enqueue; only Interrupt falls through to the last row.
        QueueDecision expected = mode switch
        {
            QueueMode.Steer or QueueMode.SteerBacklog or QueueMode.Followup or QueueMode.Collect
                => new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.QueueMode),
            QueueMode.Interrupt => new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Interrupt),
            _ => throw new InvalidOperationException($"A new QueueMode {mode} needs a row in this test."),
        };
        decision.Should().Be(expected);
        AssertNothingDropped(p);
    }

    [Fact]
    public void QueueDecisionReasons_EveryRow_HasADistinctReason()
    {
        // Hosts match on the reason to tell the rows apart; two rows sharing a phrase would make that impossible.
        string[] reasons =
        [
            QueueDecisionReasons.Idle, QueueDecisionReasons.HeartbeatWhileBusy, QueueDecisionReasons.HeartbeatWhileQueued,
            QueueDecisionReasons.Reset, QueueDecisionReasons.Followup, QueueDecisionReasons.QueueMode, QueueDecisionReasons.Interrupt,
        ];

        reasons.Should().OnlyHaveUniqueItems().And.NotContain(r => string.IsNullOrWhiteSpace(r));
    }

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

    // ---- Dispose ----

    [Fact]
    public void Dispose_ThenSessionWithDropsBecomesIdle_NoHeartbeatOwed()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        p.Policy.Dispose();
        p.Policy.Dispose(); // idempotent
        run.Dispose();

        p.Owed.Should().BeEmpty();
        p.F.LogsWithEvent("HeartbeatOwed").Should().BeEmpty();
        p.F.Ended.Should().ContainSingle("the registry itself is unaffected by the policy's disposal");
    }

    [Fact]
    public void Resolve_AfterDispose_ThrowsObjectDisposed()
    {
        using var p = new PolicyFixture();
        p.Policy.Dispose();

        Action resolve = () => p.Heartbeat(Session);

        resolve.Should().Throw<ObjectDisposedException>();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Resolve_RegistryDisposed_ThrowsObjectDisposed(bool hasQueuedFollowups)
    {
        // Resolve's XML docs: ObjectDisposedException when "the policy or its registry is disposed".
        using var p = new PolicyFixture();
        p.Registry.Dispose();

        Action resolve = () => p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: true, HasQueuedFollowups: hasQueuedFollowups));

        resolve.Should().Throw<ObjectDisposedException>();
    }

    // ---- Bad input ----

    public static TheoryData<string?> BadSessionIds() => new() { null, string.Empty, " ", "\t\n", new string('x', ActiveRunRegistry.MaxSessionIdLength + 1) };

    [Theory]
    [MemberData(nameof(BadSessionIds))]
    public void Resolve_BadSessionId_ThrowsArgumentExceptionNamingRequest(string? sessionId)
    {
        using var p = new PolicyFixture();

        Action resolve = () => p.Policy.Resolve(new QueueRequest(sessionId!, IsHeartbeat: true));

        // Null surfaces as ArgumentNullException, which is an ArgumentException.
        resolve.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("request");
    }

    [Fact]
    public void Resolve_SessionIdAtMaxLength_Accepted()
    {
        using var p = new PolicyFixture();
        string longest = new('x', ActiveRunRegistry.MaxSessionIdLength);
        using RunHandle run = p.Registry.Start(longest);

        p.Heartbeat(longest).Action.Should().Be(QueueAction.Drop);
        p.Policy.GetDroppedHeartbeats(longest).Should().Be(1);
    }

    [Theory]
    [MemberData(nameof(BadSessionIds))]
    public void GetDroppedHeartbeats_BadSessionId_ThrowsArgumentExceptionNamingSessionId(string? sessionId)
    {
        using var p = new PolicyFixture();

        Action get = () => p.Policy.GetDroppedHeartbeats(sessionId!);

        var thrown = get.Should().Throw<ArgumentException>().Which;
        thrown.ParamName.Should().Be("sessionId");
        if (sessionId is null)
        {
            thrown.Should().BeOfType<ArgumentNullException>();
        }
    }

    [Fact]
    public void Constructor_NullRegistry_ThrowsArgumentNull()
    {
        Action create = () => _ = new HeartbeatQueuePolicy(null!);

        create.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("registry");
    }

    [Fact]
    public void Constructor_NoLogger_StillCountsDropsAndRaisesOwed()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        var owed = new List<int>();
        policy.HeartbeatOwed += (_, e) => owed.Add(e.DroppedHeartbeats);
        RunHandle run = f.Registry.Start(Session);

        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);
        run.Dispose();

        owed.Should().Equal(1);
    }

    // ---- The race guard: a heartbeat resolved once the run has left the registry runs ----

    [Fact]
    public void Resolve_HeartbeatAfterRunReleased_RunsNowAndIsNotCounted()
    {
        using var p = new PolicyFixture();
        p.Registry.Start(Session).Dispose();

        p.Heartbeat(Session).Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void Resolve_HeartbeatInsideRunEndedBeforePolicyProcessedIt_RunsNowAndOwedCountUnchanged()
    {
        // A RunEnded subscriber registered before the policy runs first: the entry is already gone but the
        // policy has not yet processed the end. A heartbeat resolved there must run, not be dropped (and so
        // must not be added to the count that is about to be signalled as owed).
        using var f = new RegistryFixture();
        QueueDecision? inside = null;
        HeartbeatQueuePolicy? policy = null;
        f.Registry.RunEnded += (_, e) => inside = policy!.Resolve(new QueueRequest(e.SessionId, IsHeartbeat: true));
        policy = new HeartbeatQueuePolicy(f.Registry);
        using HeartbeatQueuePolicy disposePolicy = policy;
        var owed = new List<int>();
        policy.HeartbeatOwed += (_, e) => owed.Add(e.DroppedHeartbeats);
        RunHandle run = f.Registry.Start(Session);
        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);

        run.Dispose();

        inside.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        owed.Should().Equal(1);
        policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void Resolve_HeartbeatFiredFromHeartbeatOwedHandler_RunsNow()
    {
        // What a host does with the signal: fire the missed tick at once. It must not be dropped again.
        using var p = new PolicyFixture();
        QueueDecision? fired = null;
        p.Policy.HeartbeatOwed += (_, e) => fired = p.Heartbeat(e.SessionId);
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);

        run.Dispose();

        fired.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    private static void AssertNothingDropped(PolicyFixture p)
    {
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
        p.F.LogsWithEvent("HeartbeatDropped").Should().BeEmpty();
    }
}
