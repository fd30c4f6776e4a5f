using FluentAssertions;
using Xunit;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The run table's transitions, driven directly: states a thread race can produce but a test cannot schedule, such as
/// a provider task that has completed while the continuation that would tell the registry has not run yet.
/// </summary>
public sealed class RunTableTests : IDisposable
{
    private static readonly long Timeout = TimeSpan.FromMinutes(10).Ticks;
    private static readonly long Grace = TimeSpan.FromSeconds(30).Ticks;
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
            _table.CollectDueLocked(Timeout, ref timedOut, ref evicted);
        }

        timedOut.Should().ContainSingle();
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(Timeout + Grace, ref timedOut, ref evicted);
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
            _table.CollectDueLocked(Timeout + Grace, ref timedOut, ref evicted);
        }

        timedOut.Should().ContainSingle("a late tick reaches the deadline and the fixed eviction instant in one pass");
        evicted.Should().ContainSingle().Which.DueTicks.Should().Be(Timeout + Grace);
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
        var waiter = new PendingStart(_registry, "s", SessionTable.Hash("s"), Spec(idleTicks: 0, queueTimeoutTicks: Timeout), observer: null, queuedAt, CancellationToken.None);
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
        admitted.DeadlineTicks.Should().Be(queuedAt + Timeout, "so its deadline is never cut short");
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

    private static StartSpec Spec(long idleTicks, long queueTimeoutTicks)
        => new(Timeout, Grace, idleTicks, queueTimeoutTicks, SessionBusyBehavior.Wait, background: false, lane: 0);

    private RunEntry Enter(string sessionId, long idleTicks = 0)
    {
        var entry = new RunEntry(_registry, sessionId, SessionTable.Hash(sessionId), startedAtTicks: 0, DateTimeOffset.UnixEpoch.UtcTicks, Spec(idleTicks, queueTimeoutTicks: 0));
        using (_table.EnterGate())
        {
            _table.EnterLocked(entry, SessionBusyBehavior.Reject, nowTicks: 0).Entered.Should().BeTrue();
        }

        return entry;
    }
}
