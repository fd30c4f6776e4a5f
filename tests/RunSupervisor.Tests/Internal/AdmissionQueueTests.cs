using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The admission queue: which starts wait only for a slot, and its timeout heap. A start that leaves the queue
/// (admitted, cancelled, pushed out) is not searched for in the heap, so the heap must still let go of it, or a busy
/// registry keeps every start of the last queue timeout (and the run it admitted) in memory.
/// </summary>
public sealed class AdmissionQueueTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();
    private readonly Lock _gate = new();
    private readonly AdmissionQueue _queue;

    public AdmissionQueueTests() => _queue = new AdmissionQueue(_gate, laneCount: 1);

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void RemoveLocked_TenThousandStartsLeaveBeforeTheirTimeout_HeapStaysWithinTwiceTheWaitingStarts()
    {
        using (_gate.EnterScope())
        {
            PendingStart waiting = Enqueue("long-waiter", enqueuedAt: 0);
            for (int i = 1; i <= 10_000; i++)
            {
                // One start queues and leaves again, long before its timeout: a busy session's hand-offs.
                PendingStart start = Enqueue("s", enqueuedAt: i);
                _queue.RemoveLocked(start);
                _queue.TimeoutHeapCount.Should().BeLessThanOrEqualTo(2 * _queue.Count + 33, "stale entries are dropped once they outnumber the live ones");
            }

            _queue.Count.Should().Be(1);
            _queue.NextTimeoutTicksLocked().Should().Be(waiting.TimeoutAtTicks, "the waiting start's timeout survives every rebuild");
            ((object?)_queue.TakeTimedOutLocked(QueueTimeoutTicks)).Should().BeSameAs(waiting);
        }
    }

    [Fact]
    public void RemoveLocked_StartsLeaveInAnyOrder_TimeoutsStillComeOutInOrder()
    {
        using (_gate.EnterScope())
        {
            var starts = Enumerable.Range(0, 200).Select(i => Enqueue("s" + (i % 7), enqueuedAt: 1_000 - i)).ToList();
            foreach (PendingStart start in starts.Where((_, i) => i % 3 != 0))
            {
                _queue.RemoveLocked(start);
            }

            var left = new List<long>();
            while (_queue.TakeTimedOutLocked(long.MaxValue - 1) is { } start)
            {
                left.Add(start.TimeoutAtTicks);
                _queue.RemoveLocked(start);
            }

            left.Should().BeInAscendingOrder().And.HaveCount(67, "every third start was still waiting");
        }
    }

    [Fact]
    public void HasWaitersLocked_OtherSessionWaits_OnlyTheWaitingSessionHasWaiters()
    {
        using (_gate.EnterScope())
        {
            _queue.HasWaitersLocked("a").Should().BeFalse("nothing waits yet");
            Enqueue("a", enqueuedAt: 0);

            _queue.HasWaitersLocked("a").Should().BeTrue();
            _queue.HasWaitersLocked("b").Should().BeFalse("a start waiting for another session is not this session's waiter");
        }
    }

    [Fact]
    public void SnapshotLocked_StartsOfManySessions_OldestFirst()
    {
        using (_gate.EnterScope())
        {
            // Session order in the per-session map says nothing of age: the snapshot orders by the order of queueing.
            var queued = Enumerable.Range(0, 20).Select(i => Enqueue("s" + i, enqueuedAt: 100 - i)).ToList();

            _queue.SnapshotLocked().Should().Equal(queued, ReferenceEquals);
        }
    }

    [Fact]
    public void EnqueueLocked_BusySession_WaitsForTheSessionNotForASlot()
    {
        using (_gate.EnterScope())
        {
            PendingStart start = Enqueue("s", enqueuedAt: 0, sessionFree: false);

            start.IsReady.Should().BeFalse();
            _queue.ReadyCount.Should().Be(0);
            _queue.Lane(0).Should().BeEmpty();
        }
    }

    [Fact]
    public void EnqueueLocked_FreeSessionBehindAnotherStart_OnlyTheSessionsOldestIsReady()
    {
        using (_gate.EnterScope())
        {
            PendingStart first = Enqueue("s", enqueuedAt: 0, sessionFree: true);
            PendingStart second = Enqueue("s", enqueuedAt: 1, sessionFree: true);

            first.IsReady.Should().BeTrue("the head of a free session's queue waits only for a slot");
            second.IsReady.Should().BeFalse("it waits behind its session's older start");
            _queue.ReadyCount.Should().Be(1);
            _queue.Lane(0).Should().Equal(new[] { first }, ReferenceEquals);
        }
    }

    [Fact]
    public void SessionFreedLocked_SessionWithWaiters_ItsOldestBecomesReadyOnce()
    {
        using (_gate.EnterScope())
        {
            PendingStart first = Enqueue("s", enqueuedAt: 0);
            Enqueue("s", enqueuedAt: 1);

            _queue.SessionFreedLocked("s");
            _queue.SessionFreedLocked("s");
            _queue.SessionFreedLocked("other");

            _queue.ReadyCount.Should().Be(1, "a start already ready is not queued for a slot twice");
            _queue.Lane(0).Should().Equal(new[] { first }, ReferenceEquals);
        }
    }

    [Fact]
    public void RemoveLocked_SessionKeepsAWaiter_ReportsNotEmptyThenEmpty()
    {
        using (_gate.EnterScope())
        {
            PendingStart first = Enqueue("s", enqueuedAt: 0);
            PendingStart second = Enqueue("s", enqueuedAt: 1);

            _queue.RemoveLocked(first).Should().BeFalse("the session still has a waiting start");
            _queue.CountFor("s").Should().Be(1);
            _queue.RemoveLocked(second).Should().BeTrue("that was the session's last waiting start");
            _queue.CountFor("s").Should().Be(0);
            _queue.HasWaitersLocked("s").Should().BeFalse();
        }
    }

    [Fact]
    public void RemoveAllLocked_WaitingStarts_EveryStartLeavesAndTheHeapIsEmpty()
    {
        using (_gate.EnterScope())
        {
            PendingStart a = Enqueue("a", enqueuedAt: 0, sessionFree: true);
            PendingStart b1 = Enqueue("b", enqueuedAt: 1);
            PendingStart b2 = Enqueue("b", enqueuedAt: 2);

            List<PendingStart> all = _queue.RemoveAllLocked();

            all.Should().HaveCount(3).And.Contain(new[] { a, b1, b2 });
            all.Should().OnlyContain(start => !start.IsQueued && !start.IsReady);
            _queue.Count.Should().Be(0);
            _queue.ReadyCount.Should().Be(0);
            _queue.CountFor("a").Should().Be(0);
            _queue.CountFor("b").Should().Be(0);
            _queue.TimeoutHeapCount.Should().Be(0, "a disposed registry keeps no start alive through the heap");
            _queue.NextTimeoutTicksLocked().Should().Be(long.MaxValue);
        }
    }

    [Fact]
    public void RemoveLocked_StaleEntriesUpToTheLiveCount_HeapRebuiltOnlyWhenTheyOutnumberIt()
    {
        using (_gate.EnterScope())
        {
            var starts = Enumerable.Range(0, 100).Select(i => Enqueue("s" + i, enqueuedAt: i)).ToList();

            // Up to 50 of 100 left, the stale entries do not outnumber the 50 waiting: rebuilding would not pay yet.
            for (int i = 0; i < 50; i++)
            {
                _queue.RemoveLocked(starts[i]);
                _queue.TimeoutHeapCount.Should().Be(100, "after {0} left the heap is not rebuilt", i + 1);
            }

            _queue.RemoveLocked(starts[50]);

            _queue.TimeoutHeapCount.Should().Be(49, "51 stale entries outnumber the 49 waiting starts, so they are dropped");
            _queue.NextTimeoutTicksLocked().Should().Be(starts[51].TimeoutAtTicks);
        }
    }

    [Fact]
    public void RemoveLocked_FewStartsLeave_HeapKeepsThemBelowTheFloor()
    {
        using (_gate.EnterScope())
        {
            var starts = Enumerable.Range(0, 33).Select(i => Enqueue("s" + i, enqueuedAt: i)).ToList();

            // 32 stale entries against one waiting start: below the floor a rebuild is not worth its cost.
            for (int i = 0; i < 32; i++)
            {
                _queue.RemoveLocked(starts[i]);
            }

            _queue.TimeoutHeapCount.Should().Be(33);
            _queue.NextTimeoutTicksLocked().Should().Be(starts[32].TimeoutAtTicks, "the stale entries are skipped");
        }
    }

    [Fact]
    public void EnqueueLocked_BusySessionButTheStartWouldReplaceItsRun_WaitsOnlyForASlot()
    {
        using (_gate.EnterScope())
        {
            PendingStart first = Enqueue("s", enqueuedAt: 0);
            PendingStart replacing = Enqueue("s", enqueuedAt: 1, readyAnyway: true);

            first.IsReady.Should().BeFalse();
            replacing.IsReady.Should().BeTrue("it does not wait for the session, wherever it stands in the session's queue");
            _queue.IsOldestLocked(replacing).Should().BeFalse();
            _queue.Lane(0).Should().Equal([replacing], ReferenceEquals);
        }
    }

    [Fact]
    public void SessionTurnedBackgroundLocked_BackgroundStartsFirst_ReadiesOnlyTheOldestForegroundStart()
    {
        using (_gate.EnterScope())
        {
            PendingStart background = Enqueue("s", enqueuedAt: 0, background: true);
            PendingStart firstForeground = Enqueue("s", enqueuedAt: 1);
            PendingStart secondForeground = Enqueue("s", enqueuedAt: 2);
            Enqueue("other", enqueuedAt: 3);

            _queue.SessionTurnedBackgroundLocked("s");

            background.IsReady.Should().BeFalse("a background start does not preempt a background run");
            firstForeground.IsReady.Should().BeTrue();
            secondForeground.IsReady.Should().BeFalse("it waits behind the older foreground start");
            _queue.ReadyCount.Should().Be(1);
            _queue.SessionTurnedBackgroundLocked("s");
            _queue.ReadyCount.Should().Be(1, "a start already ready is not made ready twice");
            _queue.SessionTurnedBackgroundLocked("nobody-waits");
            PendingStart onlyBackground = Enqueue("background-only", enqueuedAt: 4, background: true);
            _queue.SessionTurnedBackgroundLocked("background-only");
            onlyBackground.IsReady.Should().BeFalse("no foreground start waits there");
            _queue.ReadyCount.Should().Be(1);
        }
    }

    [Fact]
    public void EnqueueLocked_SessionQueuesAgainAfterItsQueueEmptied_ReusesTheQueueAndStaysIdleMeanwhile()
    {
        using (_gate.EnterScope())
        {
            PendingStart first = Enqueue("s", enqueuedAt: 0);
            _queue.RemoveLocked(first);

            _queue.SessionQueueCount.Should().Be(1, "the emptied queue is kept for the session's next start");
            _queue.HasWaitersLocked("s").Should().BeFalse("a kept queue is empty: nobody waits");
            ((object?)_queue.OldestLocked("s")).Should().BeNull();
            _queue.SessionFreedLocked("s");
            _queue.ReadyCount.Should().Be(0, "an empty queue has no start to make ready");
            _queue.SnapshotLocked().Should().BeEmpty();

            PendingStart second = Enqueue("s", enqueuedAt: 1, sessionFree: true);
            _queue.SessionQueueCount.Should().Be(1);
            _queue.CountFor("s").Should().Be(1);
            _queue.IsOldestLocked(second).Should().BeTrue();
            second.IsReady.Should().BeTrue("it heads a free session's queue, which was empty");
        }
    }

    [Fact]
    public void RemoveLocked_ManySessionsQueueAndLeave_EmptyQueuesAreSweptOnceTheyOutnumberTheWaitingOnes()
    {
        using (_gate.EnterScope())
        {
            PendingStart waiting = Enqueue("long-waiter", enqueuedAt: 0);
            for (int i = 1; i <= 10_000; i++)
            {
                // A different session each time: a queue kept for a session that never queues again must not pile up.
                _queue.RemoveLocked(Enqueue("s" + i, enqueuedAt: i));
                _queue.SessionQueueCount.Should().BeLessThanOrEqualTo(1 + 64, "empty queues are swept once they outnumber the waiting sessions and the floor of 64");
            }

            _queue.CountFor("long-waiter").Should().Be(1, "a sweep never takes a queue with a waiting start");
            ((object?)_queue.OldestLocked("long-waiter")).Should().BeSameAs(waiting);
        }
    }

    [Fact]
    public void RemoveLocked_EmptyQueuesNoMoreThanTheWaitingSessions_KeepsThem()
    {
        using (_gate.EnterScope())
        {
            // 100 sessions wait; 100 others queue and leave: their empty queues do not outnumber the waiting ones.
            for (int i = 0; i < 100; i++)
            {
                Enqueue("waiting" + i, enqueuedAt: i);
            }

            for (int i = 0; i < 100; i++)
            {
                _queue.RemoveLocked(Enqueue("left" + i, enqueuedAt: 100 + i));
            }

            _queue.SessionQueueCount.Should().Be(200);
            _queue.RemoveLocked(Enqueue("one-more", enqueuedAt: 200));
            _queue.SessionQueueCount.Should().Be(100, "101 empty queues outnumber the 100 waiting sessions: all are swept");
        }
    }

    private PendingStart Enqueue(string sessionId, long enqueuedAt, bool sessionFree = false, bool readyAnyway = false, bool background = false)
    {
        PendingStart start = Pending(_registry, sessionId, Spec(queueTimeoutTicks: QueueTimeoutTicks, whenBusy: SessionBusyBehavior.Wait, background: background), enqueuedTicks: enqueuedAt);
        _queue.EnqueueLocked(start, sessionFree, readyAnyway);
        return start;
    }
}
