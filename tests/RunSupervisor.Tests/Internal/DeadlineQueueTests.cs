using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The watchdog's deadline heap (internal): the earliest due run is always at the top, whatever is added and removed
/// in between; a removed run forgets its slot; removing a run that is not queued changes nothing; and the backing
/// array is given back in halves once a burst drains below a quarter of it.
/// </summary>
public sealed class DeadlineQueueTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    // The queue asserts that its writers hold its gate: every test holds it throughout, on its one thread.
    private readonly Lock _gate = new();

    public DeadlineQueueTests() => _gate.Enter();

    public void Dispose()
    {
        _gate.Exit();
        _registry.Dispose();
    }

    [Fact]
    public void Remove_RunThatIsNotQueued_ChangesNothing()
    {
        var queue = new DeadlineQueue(_gate);
        RunEntry outsider = NewRun(dueTicks: 5);

        queue.Remove(outsider);
        queue.Count.Should().Be(0);

        RunEntry early = NewRun(dueTicks: 10);
        RunEntry late = NewRun(dueTicks: 20);
        queue.Add(late);
        queue.Add(early);

        queue.Remove(outsider);

        queue.Count.Should().Be(2);
        outsider.QueueIndex.Should().Be(-1);
        Drain(queue).Should().Equal(early, late);
    }

    [Fact]
    public void Remove_QueuedRun_ForgetsItsSlotSoItCanBeQueuedAgain()
    {
        var queue = new DeadlineQueue(_gate);
        RunEntry first = NewRun(dueTicks: 1);
        RunEntry second = NewRun(dueTicks: 2);
        RunEntry third = NewRun(dueTicks: 3);
        queue.Add(first);
        queue.Add(second);
        queue.Add(third);

        queue.Remove(second);

        second.QueueIndex.Should().Be(-1, "a run that left the heap must not point into it");
        queue.Count.Should().Be(2);

        queue.Add(second);
        Drain(queue).Should().Equal(first, second, third);
    }

    [Fact]
    public void Remove_LastRunMovedUnderALaterParent_SiftsItUpSoTheOrderHolds()
    {
        // Heap layout by insertion: [1, 10, 3, 11, 12, 30, 4]. Removing 11 moves 4 (from under 3) into 11's slot,
        // under 10: it must rise above 10, or a later drain would surface 10 while 4 is still queued.
        var queue = new DeadlineQueue(_gate);
        RunEntry[] runs = new long[] { 1, 10, 3, 11, 12, 30, 4 }.Select(NewRun).ToArray();
        foreach (RunEntry run in runs)
        {
            queue.Add(run);
        }

        queue.Remove(runs[3]);

        Drain(queue).Select(r => r.DueTicks).Should().Equal(1, 3, 4, 10, 12, 30);
    }

    [Fact]
    public void AddAndRemove_RandomSequence_MinDueTicksAlwaysMatchesTheEarliestQueuedRun()
    {
        // A fixed seed: the sequence is the same on every run, and covers removals from every depth of the heap.
        var random = new Random(12345);
        var queue = new DeadlineQueue(_gate);
        List<RunEntry> queued = [];
        for (int step = 0; step < 5_000; step++)
        {
            if (queued.Count == 0 || random.Next(3) != 0)
            {
                RunEntry run = NewRun(dueTicks: random.Next(1_000));
                queue.Add(run);
                queued.Add(run);
            }
            else
            {
                RunEntry run = queued[random.Next(queued.Count)];
                queue.Remove(run);
                queued.Remove(run);
                run.QueueIndex.Should().Be(-1);
            }

            queue.Count.Should().Be(queued.Count);
            queue.MinDueTicks.Should().Be(queued.Count == 0 ? long.MaxValue : queued.Min(r => r.DueTicks));
        }

        Drain(queue).Select(r => r.DueTicks).Should().BeInAscendingOrder().And.HaveCount(queued.Count);
    }

    [Fact]
    public void Remove_DrainingABurst_ReallocatesOnlyWhenBelowAQuarterFull()
    {
        // 64 runs grow the array to 64 slots; draining halves it when 15 runs are left (below 64 / 4) and again at 7
        // (below 32 / 4), and never below the minimum of 16. Other removals allocate nothing. Averaged over rounds,
        // after a warm-up round, so nothing a first call loads is counted.
        const int Runs = 64;
        const int Rounds = 10;
        RunEntry[] runs = Enumerable.Range(0, Runs).Select(i => NewRun(dueTicks: i)).ToArray();
        long[] allocatedLeaving = new long[Runs];
        for (int round = 0; round <= Rounds; round++)
        {
            var queue = new DeadlineQueue(_gate);
            foreach (RunEntry run in runs)
            {
                queue.Add(run);
            }

            foreach (RunEntry run in runs)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                queue.Remove(run);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (round > 0)
                {
                    allocatedLeaving[queue.Count] += allocated;
                }
            }
        }

        int[] reallocatedAt = Enumerable.Range(0, Runs).Where(left => allocatedLeaving[left] / Rounds >= 64).ToArray();
        reallocatedAt.Should().Equal(7, 15);
    }

    [Fact]
    public void MinDueTicks_EmptyQueue_IsMaxValue()
        => new DeadlineQueue(_gate).MinDueTicks.Should().Be(long.MaxValue);

    private static List<RunEntry> Drain(DeadlineQueue queue)
    {
        List<RunEntry> order = [];
        while (queue.Count > 0)
        {
            RunEntry next = queue.Peek();
            queue.MinDueTicks.Should().Be(next.DueTicks);
            queue.Remove(next);
            order.Add(next);
        }

        return order;
    }

    // With no timeout and no idle timeout, a run is due the instant it starts.
    private RunEntry NewRun(long dueTicks) => Entry(_registry, startedAtTicks: dueTicks, spec: Spec(timeoutTicks: 0, graceTicks: 0));
}
