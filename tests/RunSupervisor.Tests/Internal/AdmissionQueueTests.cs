using FluentAssertions;
using Xunit;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The admission queue's timeout heap: a start that leaves the queue (admitted, cancelled, pushed out) is not searched
/// for in the heap, so the heap must still let go of it, or a busy registry keeps every start of the last queue timeout
/// (and the run it admitted) in memory.
/// </summary>
public sealed class AdmissionQueueTests : IDisposable
{
    private static readonly long QueueTimeout = TimeSpan.FromMinutes(2).Ticks;
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
            ((object?)_queue.TakeTimedOutLocked(QueueTimeout)).Should().BeSameAs(waiting);
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

    private PendingStart Enqueue(string sessionId, long enqueuedAt)
    {
        var spec = new StartSpec(TimeSpan.FromMinutes(10).Ticks, TimeSpan.FromSeconds(30).Ticks, idleTicks: 0, QueueTimeout, SessionBusyBehavior.Wait, background: false, lane: 0);
        var start = new PendingStart(_registry, sessionId, SessionTable.Hash(sessionId), spec, observer: null, enqueuedAt, CancellationToken.None);
        _queue.EnqueueLocked(start, sessionFree: false);
        return start;
    }
}
