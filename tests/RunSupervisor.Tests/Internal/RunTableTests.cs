using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The run table's transitions, driven directly: states a thread race can produce but a test cannot schedule, such as
/// a provider task that has completed while the continuation that would tell the registry has not run yet; and what
/// each transition does to the waiting starts (who is admitted, in which order, who fails and why), to the watchdog's
/// next instant and to the abandoned ledger.
/// </summary>
public sealed class RunTableTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();
    private readonly RunTable _table = new(maxAbandonedRuns: 10);

    public void Dispose() => _registry.Dispose();

    [Theory]
    [InlineData("complete", RunEndReason.TimedOut)]
    [InlineData("fault", RunEndReason.TimedOut)]
    [InlineData("cancel", RunEndReason.TimedOut)]
    public void CollectDue_EvictionInstantWithTheAttachedTaskAlreadySettled_EndsWithItsRealOutcomeNotInTheLedger(string outcome, RunEndReason expected)
    {
        RunEntry entry = Enter("s");
        Task settled = outcome switch
        {
            "complete" => Task.CompletedTask,
            "fault" => Task.FromException(new InvalidOperationException("late")),
            _ => Task.FromCanceled(new CancellationToken(canceled: true)),
        };
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (_table.EnterGate())
        {
            // Attached directly: no continuation tells the registry, as if the settling thread had not got to it yet.
            _table.AttachLocked(entry, settled);
            _table.CollectDueLocked(TimeoutTicks, ref timedOut, ref evicted);
        }

        timedOut.Should().ContainSingle();
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(TimeoutTicks + GraceTicks, ref timedOut, ref evicted);
        }

        Left left = evicted.Should().ContainSingle().Subject.Left;
        left.Entry.Should().BeSameAs(entry);
        entry.EndReason.Should().Be(expected);
        entry.Status.Should().Be(RunStatus.Ended);
        entry.Detail.Should().Be("deadline passed after 00:10:00");
        entry.Abandoned.Should().BeFalse();
        _table.AbandonedCount.Should().Be(0);
        _ = settled.Exception;
    }

    [Fact]
    public void CollectDue_EvictionInstantWithThePendingTask_ForceEvictedIntoTheLedger()
    {
        RunEntry entry = Enter("s");
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (_table.EnterGate())
        {
            _table.AttachLocked(entry, new TaskCompletionSource().Task);
            _table.CollectDueLocked(TimeoutTicks + GraceTicks, ref timedOut, ref evicted);
        }

        timedOut.Should().ContainSingle("a late tick reaches the deadline and the fixed eviction instant in one pass");
        evicted.Should().ContainSingle().Which.DueTicks.Should().Be(TimeoutTicks + GraceTicks);
        entry.EndReason.Should().Be(RunEndReason.ForceEvicted);
        entry.Status.Should().Be(RunStatus.Evicted);
        entry.Abandoned.Should().BeTrue();
        _table.AbandonedCount.Should().Be(1);
    }

    [Fact]
    public void Leave_StaleEntry_ChangesNothing()
    {
        RunEntry first = Enter("s");
        Left left;
        using (_table.EnterGate())
        {
            _table.LeaveLocked(first, EndTrigger.Released, nowTicks: 1).HasLeft.Should().BeTrue();
        }

        RunEntry second = Enter("s");
        using (_table.EnterGate())
        {
            left = _table.LeaveLocked(first, EndTrigger.Released, nowTicks: 2);
        }

        left.HasLeft.Should().BeFalse("a stale release never removes a newer run");
        _table.Find("s").Should().BeSameAs(second);
        _table.Count.Should().Be(1);
    }

    [Fact]
    public void Leave_ClockReadBeforeAStartWasQueued_AdmitsItNoEarlierThanItWasQueued()
    {
        long queuedAt = TimeSpan.FromSeconds(5).Ticks;
        RunEntry first = Enter("s");
        PendingStart waiter = Waiter("s", queuedAt);
        using (_table.EnterGate())
        {
            _table.EnqueueLocked(waiter, queuedAt).Should().BeNull();

            // The releasing thread read the clock at 1 s, before the start was queued at 5 s, and took the gate after.
            _table.LeaveLocked(first, EndTrigger.Released, nowTicks: TimeSpan.FromSeconds(1).Ticks).HasLeft.Should().BeTrue();
            var settled = new List<PendingStart>();
            foreach (PendingStart start in _table.TakeSettledLocked())
            {
                settled.Add(start);
            }

            ((object?)settled.Should().ContainSingle().Subject).Should().BeSameAs(waiter, "the admitted start is handed over for publishing");
        }

        RunEntry admitted = waiter.Admitted.Should().NotBeNull().And.Subject.As<RunEntry>();
        admitted.StartedAtTicks.Should().Be(queuedAt, "a run never starts before it was asked for");
        admitted.DeadlineTicks.Should().Be(queuedAt + TimeoutTicks, "so its deadline is never cut short");
        waiter.LeftAtTicks.Should().Be(queuedAt, "and its queue wait is never negative");
    }

    [Fact]
    public void Leave_ClockReadBeforeTheWatchdogsIdleAbort_EndIsNeverStampedBeforeTheAbort()
    {
        long idle = TimeSpan.FromSeconds(2).Ticks;
        RunEntry entry = Enter("s", idle);
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(TimeSpan.FromSeconds(3).Ticks, ref timedOut, ref evicted);
        }

        timedOut.Should().ContainSingle().Which.DueTicks.Should().Be(idle, "the abort was due at the idle instant");
        using (_table.EnterGate())
        {
            // The provider settled and its thread read the clock at 0, before the watchdog's abort, then took the gate.
            _table.LeaveLocked(entry, EndTrigger.Released, nowTicks: 0).HasLeft.Should().BeTrue();
        }

        entry.EndReason.Should().Be(RunEndReason.Stalled);
        entry.EndedAtTicks.Should().Be(idle, "an end is never stamped before the abort that caused it");
    }

    [Fact]
    public void NextDueTicks_StartWaitsWithAQueueTimeoutBeforeAnyDeadline_DueAtTheQueueTimeout()
    {
        long queueTimeout = TimeSpan.FromMinutes(1).Ticks;
        var table = new RunTable(maxAbandonedRuns: 10, maxActiveRuns: 1);
        EnterInto(table, "x");
        PendingStart waiter = Waiter("s", enqueuedAt: 0, queueTimeout: queueTimeout);
        using (table.EnterGate())
        {
            table.NextDueTicksLocked.Should().Be(TimeoutTicks, "only the run's deadline is due");
            table.EnqueueLocked(waiter, nowTicks: 0).Should().BeNull();

            table.NextDueTicksLocked.Should().Be(queueTimeout, "the watchdog must wake for the waiting start's queue timeout");

            table.CancelWaitingLocked(waiter, new OperationCanceledException(), nowTicks: 1).Should().BeTrue();
            TakeSettled(table);
            table.NextDueTicksLocked.Should().Be(TimeoutTicks, "a start that left is not waited for");
        }
    }

    [Fact]
    public void Enter_FreeSessionWhoseStartsWaitForASlot_AWaitingStartIsBusyOthersAreFull()
    {
        var table = new RunTable(maxAbandonedRuns: 10, maxActiveRuns: 1);
        EnterInto(table, "x");
        using (table.EnterGate())
        {
            table.EnqueueLocked(Waiter("s", enqueuedAt: 0), nowTicks: 0).Should().BeNull();

            EnterResult waits = table.EnterLocked(NewEntry("s"), SessionBusyBehavior.Wait, nowTicks: 1);
            EnterResult rejects = table.EnterLocked(NewEntry("s"), SessionBusyBehavior.Reject, nowTicks: 1);

            waits.Outcome.Should().Be(EnterOutcome.Busy, "a start that waits never overtakes the session's waiting starts");
            waits.Current.Should().BeNull();
            rejects.Outcome.Should().Be(EnterOutcome.Full, "a start that does not wait is refused by the cap it would break");
            rejects.Limit.Should().Be(1);
        }
    }

    [Fact]
    public void Enqueue_SessionQueueFullRejectingTheNewest_RefusesTheNewStartAndKeepsTheOld()
    {
        var table = new RunTable(maxAbandonedRuns: 10, maxQueuedPerSession: 1);
        EnterInto(table, "s");
        PendingStart first = Waiter("s", enqueuedAt: 0);
        using (table.EnterGate())
        {
            table.EnqueueLocked(first, nowTicks: 0).Should().BeNull();

            Exception? refused = table.EnqueueLocked(Waiter("s", enqueuedAt: 1), nowTicks: 1);

            var full = refused.Should().BeOfType<RunQueueFullException>().Subject;
            full.Message.Should().Be("Session 's' already has 1 starts waiting (MaxQueuedPerSession).", "the new start is refused, nothing is pushed out");
            full.Limit.Should().Be(1);
            full.SessionId.Should().Be("s");
            first.IsQueued.Should().BeTrue();
            table.QueuedCount("s").Should().Be(1);
        }
    }

    [Fact]
    public void Enqueue_SessionAndSlotFree_AdmittedAtOnce()
    {
        var table = new RunTable(maxAbandonedRuns: 10);
        PendingStart waiter = Waiter("s", enqueuedAt: 10);
        using (table.EnterGate())
        {
            table.EnqueueLocked(waiter, nowTicks: 10).Should().BeNull();
            ((object?)TakeSettled(table).Should().ContainSingle().Subject).Should().BeSameAs(waiter);
        }

        waiter.IsQueued.Should().BeFalse();
        waiter.Admitted.Should().NotBeNull().And.BeSameAs(table.Find("s"));
        waiter.Failure.Should().BeNull();
        table.QueuedCount("s").Should().Be(0);
    }

    [Fact]
    public void CancelWaiting_SessionsOldestWaitedForAFullLane_LeavesOnceAndTheNextStartInAFreeLaneIsAdmitted()
    {
        var table = new RunTable(maxAbandonedRuns: 10, new LaneSet(new Dictionary<string, int> { ["a"] = 1 }));
        EnterInto(table, "x", lane: 1);
        PendingStart first = Waiter("s", enqueuedAt: 0, lane: 1);
        PendingStart second = Waiter("s", enqueuedAt: 1, lane: 0);
        var cancelled = new OperationCanceledException();
        using (table.EnterGate())
        {
            table.EnqueueLocked(first, nowTicks: 0).Should().BeNull();
            table.EnqueueLocked(second, nowTicks: 1).Should().BeNull();
            TakeSettled(table).Should().BeEmpty("the session's oldest waits for lane a, the next waits behind it");

            table.CancelWaitingLocked(first, cancelled, nowTicks: 2).Should().BeTrue();

            TakeSettled(table).Should().Equal(new[] { first, second }, ReferenceEquals);

            table.CancelWaitingLocked(first, new OperationCanceledException(), nowTicks: 3).Should().BeFalse("it has already left");
            TakeSettled(table).Should().BeEmpty();
        }

        first.Failure.Should().BeSameAs(cancelled, "a start leaves once, with its first outcome");
        first.LeftAtTicks.Should().Be(2);
        first.LeftSessionIdle.Should().BeFalse("the next start took the session");
        second.Admitted.Should().NotBeNull("the session is free and the default lane has room").And.BeSameAs(table.Find("s"));
        second.Admitted!.Lane.Should().Be(0);
    }

    [Fact]
    public void CancelWaiting_SessionStillBusy_NextStartBecomesReadyOnlyWhenTheSessionIsFreed()
    {
        // One global slot, held by the busy session: a start of another session queued after the cancel became ready
        // before the busy session's next start, so it gets the slot first when the busy session's run leaves.
        var table = new RunTable(maxAbandonedRuns: 10, maxActiveRuns: 1);
        RunEntry busy = EnterInto(table, "s");
        PendingStart first = Waiter("s", enqueuedAt: 0);
        PendingStart second = Waiter("s", enqueuedAt: 1);
        PendingStart other = Waiter("u", enqueuedAt: 3);
        using (table.EnterGate())
        {
            table.EnqueueLocked(first, nowTicks: 0).Should().BeNull();
            table.EnqueueLocked(second, nowTicks: 1).Should().BeNull();
            table.CancelWaitingLocked(first, new OperationCanceledException(), nowTicks: 2).Should().BeTrue();
            table.EnqueueLocked(other, nowTicks: 3).Should().BeNull();
            TakeSettled(table).Should().ContainSingle();

            second.IsReady.Should().BeFalse("its session is busy: it waits for the session, not for a slot");
            table.LeaveLocked(busy, EndTrigger.Released, nowTicks: 4).HasLeft.Should().BeTrue();

            ((object?)TakeSettled(table).Should().ContainSingle().Subject).Should().BeSameAs(other);
        }

        other.Admitted.Should().NotBeNull();
        second.IsQueued.Should().BeTrue("it became ready after the other session's start");
    }

    [Fact]
    public void Admit_ReadyStartsSessionTakenByAStartThatDidNotWait_WaitsForTheSessionAgain()
    {
        var table = new RunTable(maxAbandonedRuns: 10, new LaneSet(new Dictionary<string, int> { ["a"] = 1 }));
        RunEntry x = EnterInto(table, "x", lane: 1);
        PendingStart waiter = Waiter("s", enqueuedAt: 0, lane: 1);
        RunEntry direct;
        using (table.EnterGate())
        {
            table.EnqueueLocked(waiter, nowTicks: 0).Should().BeNull();
            waiter.IsReady.Should().BeTrue("its session is free: it waits for lane a");

            // A start that rejects rather than waits is not held back by the waiting start, and its lane has room.
            direct = NewEntry("s", lane: 0);
            table.EnterLocked(direct, SessionBusyBehavior.Reject, nowTicks: 1).Entered.Should().BeTrue();

            table.LeaveLocked(x, EndTrigger.Released, nowTicks: 2).HasLeft.Should().BeTrue();
            TakeSettled(table).Should().BeEmpty("lane a is free, but the waiting start's session is taken");
            waiter.IsQueued.Should().BeTrue();
            waiter.IsReady.Should().BeFalse();
            table.Find("s").Should().BeSameAs(direct);

            table.LeaveLocked(direct, EndTrigger.Released, nowTicks: 3).HasLeft.Should().BeTrue();
            ((object?)TakeSettled(table).Should().ContainSingle().Subject).Should().BeSameAs(waiter);
        }

        waiter.Admitted.Should().NotBeNull().And.BeSameAs(table.Find("s"));
        waiter.Admitted!.Lane.Should().Be(1);
    }

    [Fact]
    public void ConfirmStart_LeasedEntries_OnlyTheSessionsLiveRunIsConfirmed()
    {
        RunEntry current = NewEntry("s", leased: true);
        RunEntry refused = NewEntry("s", leased: true);
        RunEntry ended = NewEntry("t", leased: true);
        using (_table.EnterGate())
        {
            _table.EnterLocked(current, SessionBusyBehavior.Reject, nowTicks: 0).Entered.Should().BeTrue();
            _table.EnterLocked(refused, SessionBusyBehavior.Reject, nowTicks: 0).Outcome.Should().Be(EnterOutcome.Busy);
            _table.EnterLocked(ended, SessionBusyBehavior.Reject, nowTicks: 0).Entered.Should().BeTrue();
            _table.LeaveLocked(ended, EndTrigger.Withdrawn, nowTicks: 1).Quiet.Should().BeTrue("its start was never published");

            _table.ConfirmStartLocked(refused, lease: null, validUntilTicks: 100).Should().BeFalse("it never became the session's run");
            _table.ConfirmStartLocked(ended, lease: null, validUntilTicks: 100).Should().BeFalse("it has left");
            _table.ConfirmStartLocked(current, lease: null, validUntilTicks: 100).Should().BeTrue();
        }

        current.StartPublished.Should().BeTrue();
        refused.StartPublished.Should().BeFalse();
        ended.StartPublished.Should().BeFalse();
    }

    [Theory]
    [InlineData("completed", false, false)]
    [InlineData("none", true, false)]
    [InlineData("pending", true, true)]
    [InlineData("pending", false, true)]
    [InlineData("none", false, true)]
    public void Enter_Supersede_OldRunGoesToTheLedgerOnlyWhileItsProviderMayStillRun(string provider, bool released, bool abandoned)
    {
        RunEntry old = Enter("s");
        RunEntry replacement = NewEntry("s");
        EnterResult result;
        using (_table.EnterGate())
        {
            if (provider != "none")
            {
                _table.AttachLocked(old, provider == "completed" ? Task.CompletedTask : new TaskCompletionSource().Task);
            }

            if (released)
            {
                _table.MarkReleasedLocked(old).Should().BeTrue();
                _table.MarkReleasedLocked(old).Should().BeFalse("only the first release counts");
            }

            result = _table.EnterLocked(replacement, SessionBusyBehavior.Supersede, nowTicks: 1);
        }

        result.Entered.Should().BeTrue();
        result.Superseded.Entry.Should().BeSameAs(old);
        old.EndReason.Should().Be(RunEndReason.Superseded);
        old.Abandoned.Should().Be(abandoned, "a settled provider, or a released run without one, leaves nothing running");
        _table.AbandonedCount.Should().Be(abandoned ? 1 : 0);
    }

    [Fact]
    public void CollectDue_StaleIdleCheckAheadOfAnIdleRun_RecheckedAndTheIdleRunStillAborts()
    {
        long second = TimeSpan.FromSeconds(1).Ticks;
        RunEntry progressing = Enter("a", idleTicks: 2 * second);
        RunEntry idle = Enter("b", idleTicks: 3 * second);
        progressing.ReportProgress(3 * second / 2);
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(3 * second, ref timedOut, ref evicted);
            _table.NextDueTicksLocked.Should().Be(7 * second / 2, "the progressing run is looked at again one idle timeout after its progress");
        }

        timedOut.Should().ContainSingle("the progressing run's new check moves behind the idle run's").Which.Entry.Should().BeSameAs(idle);
        progressing.Status.Should().Be(RunStatus.Running);
        progressing.DueTicks.Should().Be(7 * second / 2);
        idle.Status.Should().Be(RunStatus.Aborting);
        idle.AbortCause.Should().Be(AbortCause.Idle);
    }

    [Fact]
    public void CollectDue_TwoRunsIdleInOnePass_BothReported()
    {
        long second = TimeSpan.FromSeconds(1).Ticks;
        RunEntry a = Enter("a", idleTicks: 2 * second);
        RunEntry b = Enter("b", idleTicks: 3 * second);
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(4 * second, ref timedOut, ref evicted);
        }

        timedOut.Should().Equal((a, 2 * second), (b, 3 * second));
        evicted.Should().BeNull();
    }

    [Fact]
    public void CollectDue_QueueTimeoutOfTheSessionsOldest_FailsItWithItsWaitAndAdmitsTheNextInAFreeLane()
    {
        long queueTimeout = TimeSpan.FromMinutes(1).Ticks;
        long enqueuedAt = TimeSpan.FromSeconds(5).Ticks;
        long now = enqueuedAt + queueTimeout + TimeSpan.FromSeconds(2).Ticks;
        var table = new RunTable(maxAbandonedRuns: 10, new LaneSet(new Dictionary<string, int> { ["a"] = 1 }));
        EnterInto(table, "x", lane: 1);
        PendingStart first = Waiter("s", enqueuedAt, lane: 1, queueTimeout: queueTimeout);
        PendingStart second = Waiter("s", enqueuedAt, lane: 0, queueTimeout: TimeoutTicks);
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        using (table.EnterGate())
        {
            table.EnqueueLocked(first, enqueuedAt).Should().BeNull();
            table.EnqueueLocked(second, enqueuedAt).Should().BeNull();

            table.CollectDueLocked(now, ref timedOut, ref evicted);

            TakeSettled(table).Should().Equal(new[] { first, second }, ReferenceEquals);
        }

        var timeout = first.Failure.Should().BeOfType<RunQueueTimeoutException>().Subject;
        timeout.Waited.Should().Be(TimeSpan.FromSeconds(62), "it waited from its enqueue until now");
        timeout.SessionId.Should().Be("s");
        timeout.Lane.Should().Be("a");
        first.LeftAtTicks.Should().Be(now);
        second.Admitted.Should().NotBeNull("the session is free and the default lane has room").And.BeSameAs(table.Find("s"));
        timedOut.Should().BeNull();
    }

    [Fact]
    public void LeaveAll_WaitingStartsAndRuns_EveryStartFailsAsDisposedEveryRunLeavesAndNoneIsAdmittedAfter()
    {
        var table = new RunTable(maxAbandonedRuns: 10, maxActiveRuns: 1);
        RunEntry run = EnterInto(table, "x");
        PendingStart first = Waiter("s", enqueuedAt: 0);
        PendingStart second = Waiter("u", enqueuedAt: 1);
        PendingStart late = Waiter("v", enqueuedAt: 6);
        List<Left> left;
        List<PendingStart> settled;
        using (table.EnterGate())
        {
            table.EnqueueLocked(first, nowTicks: 0).Should().BeNull();
            table.EnqueueLocked(second, nowTicks: 1).Should().BeNull();

            left = table.LeaveAllLocked(nowTicks: 5);
            settled = TakeSettled(table);

            // The disposal freed the only slot, but nothing is admitted after it.
            table.EnqueueLocked(late, nowTicks: 6).Should().BeNull();
            TakeSettled(table).Should().BeEmpty();
        }

        left.Should().ContainSingle().Which.Entry.Should().BeSameAs(run);
        run.EndReason.Should().Be(RunEndReason.Aborted);
        settled.Should().HaveCount(2).And.Contain(new[] { first, second });
        foreach (PendingStart start in new[] { first, second })
        {
            var disposed = start.Failure.Should().BeOfType<ObjectDisposedException>().Subject;
            disposed.Message.Should().StartWith("The registry was disposed while the start waited for admission.");
            disposed.ObjectName.Should().Be(nameof(ActiveRunRegistry));
            start.Admitted.Should().BeNull("a slot freed by the disposal goes to no one");
            start.LeftAtTicks.Should().Be(5);
        }

        late.Admitted.Should().BeNull();
        table.Count.Should().Be(0);
    }

    private static List<PendingStart> TakeSettled(RunTable table)
    {
        var settled = new List<PendingStart>();
        foreach (PendingStart start in table.TakeSettledLocked())
        {
            settled.Add(start);
        }

        return settled;
    }

    private PendingStart Waiter(string sessionId, long enqueuedAt, int lane = 0, long? queueTimeout = null)
        => Pending(_registry, sessionId, Spec(queueTimeoutTicks: queueTimeout ?? TimeoutTicks, whenBusy: SessionBusyBehavior.Wait, lane: lane), enqueuedAt);

    private RunEntry NewEntry(string sessionId, int lane = 0, long idleTicks = 0, bool leased = false)
        => Entry(_registry, sessionId, spec: Spec(idleTicks: idleTicks, whenBusy: SessionBusyBehavior.Wait, lane: lane), leased: leased);

    private RunEntry EnterInto(RunTable table, string sessionId, int lane = 0, long idleTicks = 0)
    {
        RunEntry entry = NewEntry(sessionId, lane, idleTicks);
        using (table.EnterGate())
        {
            table.EnterLocked(entry, SessionBusyBehavior.Reject, nowTicks: 0).Entered.Should().BeTrue();
        }

        return entry;
    }

    private RunEntry Enter(string sessionId, long idleTicks = 0) => EnterInto(_table, sessionId, idleTicks: idleTicks);
}
