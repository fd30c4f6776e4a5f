using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The registry's session map (internal): identity-checked removal and replacement, resizing both ways, and
/// lock-free reads that never miss a run while writers add, remove and resize around it.
/// </summary>
public sealed class SessionTableTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    // The table asserts that its writers hold its gate: the synchronous tests hold it throughout, on their one thread.
    private readonly Lock _gate = new();

    public SessionTableTests() => _gate.Enter();

    public void Dispose()
    {
        if (_gate.IsHeldByCurrentThread)
        {
            _gate.Exit();
        }

        _registry.Dispose();
    }

    [Fact]
    public void Find_EmptyTable_ReturnsNull()
    {
        var table = new SessionTable(_gate);

        table.Find("s").Should().BeNull();
        table.Count.Should().Be(0);
    }

    [Fact]
    public void TryAdd_NewSession_IsFoundByIdAndHash()
    {
        var table = new SessionTable(_gate);
        RunEntry run = NewRun("s");

        table.TryAdd(run, out RunEntry? current).Should().BeTrue();

        current.Should().BeNull();
        table.Find("s").Should().BeSameAs(run);
        table.Find("s", SessionTable.Hash("s")).Should().BeSameAs(run);
        table.Find("S").Should().BeNull("session ids are compared ordinally");
        table.Count.Should().Be(1);
    }

    [Fact]
    public void TryAdd_SessionAlreadyPresent_ReturnsFalseAndTheCurrentRun()
    {
        var table = new SessionTable(_gate);
        RunEntry first = NewRun("s");
        table.TryAdd(first, out _);

        table.TryAdd(NewRun("s"), out RunEntry? current).Should().BeFalse();

        current.Should().BeSameAs(first);
        table.Count.Should().Be(1);
    }

    [Fact]
    public void TryRemove_AnotherHandleOfTheSameSession_ChangesNothing()
    {
        var table = new SessionTable(_gate);
        RunEntry run = NewRun("s");
        table.TryAdd(run, out _);

        table.TryRemove(NewRun("s")).Should().BeFalse();

        table.Find("s").Should().BeSameAs(run);
        table.TryRemove(run).Should().BeTrue();
        table.TryRemove(run).Should().BeFalse();
        table.Find("s").Should().BeNull();
        table.Count.Should().Be(0);
    }

    [Fact]
    public void TryReplace_CurrentRun_PutsTheReplacementInItsPlace()
    {
        var table = new SessionTable(_gate);
        RunEntry run = NewRun("s");
        RunEntry replacement = NewRun("s");
        table.TryAdd(run, out _);

        table.TryReplace(run, replacement).Should().BeTrue();
        table.TryReplace(run, NewRun("s")).Should().BeFalse("the run is no longer in the table");

        table.Find("s").Should().BeSameAs(replacement);
        table.Count.Should().Be(1);
    }

    [Fact]
    public void TryAddAndTryRemove_ManySessions_GrowsKeepsEveryRunFindableAndShrinksBack()
    {
        var table = new SessionTable(_gate);
        int initialCapacity = table.Capacity;
        RunEntry[] runs = Enumerable.Range(0, 20_000).Select(i => NewRun($"session-{i}")).ToArray();

        foreach (RunEntry run in runs)
        {
            table.TryAdd(run, out _).Should().BeTrue();
        }

        table.Count.Should().Be(runs.Length);
        table.Capacity.Should().BeGreaterThanOrEqualTo(2 * runs.Length, "at most half the slots are used");
        runs.Should().OnlyContain(run => table.Find(run.SessionId) == run);

        // Remove every other run: the chains through the removed slots must still reach the runs behind them.
        for (int i = 0; i < runs.Length; i += 2)
        {
            table.TryRemove(runs[i]).Should().BeTrue();
        }

        for (int i = 0; i < runs.Length; i++)
        {
            table.Find(runs[i].SessionId).Should().Be(i % 2 == 0 ? null : runs[i]);
        }

        for (int i = 1; i < runs.Length; i += 2)
        {
            table.TryRemove(runs[i]).Should().BeTrue();
        }

        table.Count.Should().Be(0);
        table.Capacity.Should().Be(initialCapacity, "an emptied table gives its memory back");
    }

    [Fact]
    public void TryAdd_RepeatedAddAndRemoveOfOneSession_DoesNotGrowTheTable()
    {
        var table = new SessionTable(_gate);
        RunEntry[] neighbours = Enumerable.Range(0, 5).Select(i => NewRun($"n{i}")).ToArray();
        foreach (RunEntry neighbour in neighbours)
        {
            table.TryAdd(neighbour, out _);
        }

        int capacity = table.Capacity;
        for (int i = 0; i < 10_000; i++)
        {
            RunEntry run = NewRun("busy");
            table.TryAdd(run, out _).Should().BeTrue();
            table.TryRemove(run).Should().BeTrue();
        }

        table.Capacity.Should().Be(capacity, "removed slots are reused, so churn on one session never forces a resize");
        neighbours.Should().OnlyContain(run => table.Find(run.SessionId) == run);
    }

    [Fact]
    public void TryAdd_SessionIdsCraftedToCollide_SwitchesToTheRandomizedHashAndKeepsEveryRunFindable()
    {
        // Ids whose cheap hash agrees in its low 12 bits share one probe chain in any table of up to 4,096 slots.
        const int Mask = 4095;
        string[] colliding = Enumerable.Range(0, int.MaxValue)
            .Select(i => $"flood-{i}")
            .Where(id => (SessionTable.Hash(id) & Mask) == (SessionTable.Hash("flood-0") & Mask))
            .Take(SessionTable.MaxProbeBeforeRandomizing + 50)
            .ToArray();
        var table = new SessionTable(_gate);
        RunEntry[] runs = colliding.Select(NewRun).ToArray();

        foreach (RunEntry run in runs)
        {
            table.TryAdd(run, out _).Should().BeTrue();
        }

        table.IsRandomized.Should().BeTrue("a probe past the limit means the cheap hash is being attacked");
        runs.Should().OnlyContain(run => table.Find(run.SessionId) == run);
        table.Find("flood-not-there").Should().BeNull();
        foreach (RunEntry run in runs)
        {
            table.TryRemove(run).Should().BeTrue();
        }

        table.Count.Should().Be(0);
        table.IsRandomized.Should().BeTrue("the switch is for the table's lifetime");
    }

    [Fact]
    public void Find_MissingIdBehindARunOfNeighbouringSlots_MakesTheNextInsertSwitchToTheRandomizedHash()
    {
        // One id per slot 0..110 of a 256-slot table: every insert lands in its own slot (no long insert probe), but
        // together they form one run that a lookup of a missing id homed at slot 0 must walk to the end.
        const int Slots = 256;
        int clusterLength = SessionTable.MaxProbeBeforeRandomizing + 10;
        Dictionary<int, string> bySlot = [];
        string? missing = null;
        for (int i = 0; bySlot.Count < clusterLength || missing is null; i++)
        {
            string id = $"near-{i}";
            int slot = SessionTable.Hash(id) & (Slots - 1);
            if (slot < clusterLength && !bySlot.ContainsKey(slot))
            {
                bySlot[slot] = id;
            }
            else if (slot == 0 && missing is null)
            {
                missing = id;
            }
        }

        var table = new SessionTable(_gate);
        foreach (string id in bySlot.OrderBy(p => p.Key).Select(p => p.Value))
        {
            table.TryAdd(NewRun(id), out _);
        }

        table.Capacity.Should().Be(Slots);
        table.IsRandomized.Should().BeFalse("no insert probed far");

        table.Find(missing!).Should().BeNull();
        table.TryAdd(NewRun("after-the-long-lookup"), out _).Should().BeTrue();

        table.IsRandomized.Should().BeTrue();
        bySlot.Values.Should().OnlyContain(id => table.Find(id) != null);
    }

    [Fact]
    public void TryAdd_OrdinarySessionIds_KeepTheCheapHash()
    {
        var table = new SessionTable(_gate);

        foreach (int i in Enumerable.Range(0, 100_000))
        {
            table.TryAdd(NewRun($"session-{i}"), out _);
        }

        table.IsRandomized.Should().BeFalse();
    }

    [Fact]
    public void GetEnumerator_SkipsRemovedRuns()
    {
        var table = new SessionTable(_gate);
        RunEntry[] runs = Enumerable.Range(0, 50).Select(i => NewRun($"s{i}")).ToArray();
        foreach (RunEntry run in runs)
        {
            table.TryAdd(run, out _);
        }

        foreach (RunEntry run in runs.Where((_, i) => i % 3 == 0))
        {
            table.TryRemove(run);
        }

        List<RunEntry> seen = [];
        foreach (RunEntry run in table)
        {
            seen.Add(run);
        }

        // By reference: entries are compared as the table holds them.
        RunEntry[] kept = runs.Where((_, i) => i % 3 != 0).ToArray();
        seen.Should().HaveCount(kept.Length).And.OnlyContain(run => kept.Contains(run));
    }

    [Fact]
    public async Task Find_WhileAWriterAddsRemovesAndResizes_NeverMissesARunThatStaysInTheTable()
    {
        // A gate of its own, not held by this thread: the writer below runs on another.
        var gate = new Lock();
        var table = new SessionTable(gate);
        RunEntry[] stable = Enumerable.Range(0, 64).Select(i => NewRun($"stable-{i}")).ToArray();
        lock (gate)
        {
            foreach (RunEntry run in stable)
            {
                table.TryAdd(run, out _);
            }
        }

        RunEntry[] churn = Enumerable.Range(0, 4096).Select(i => NewRun($"churn-{i}")).ToArray();
        int writerDone = 0;

        // The writer grows the table to thousands of runs and empties it again, many times: every resize, tombstone
        // and cleared slot happens while the readers probe.
        Task writer = Task.Run(() =>
        {
            for (int round = 0; round < 20; round++)
            {
                foreach (RunEntry run in churn)
                {
                    lock (gate)
                    {
                        table.TryAdd(run, out _);
                    }
                }

                foreach (RunEntry run in churn)
                {
                    lock (gate)
                    {
                        table.TryRemove(run);
                    }
                }
            }

            Volatile.Write(ref writerDone, 1);
        });

        Task<int>[] readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            int misses = 0;
            while (Volatile.Read(ref writerDone) == 0)
            {
                foreach (RunEntry run in stable)
                {
                    if (table.Find(run.SessionId) != run)
                    {
                        misses++;
                    }
                }
            }

            return misses;
        })).ToArray();

        await writer;
        int[] misses = await Task.WhenAll(readers);

        misses.Should().AllSatisfy(m => m.Should().Be(0));
        table.Count.Should().Be(stable.Length);
    }

    [Fact]
    public void TryAdd_FillingTheTable_GrowsOnlyPastHalfTheSlotsToAQuarterLoad()
    {
        // At most half the slots may be non-null, so the 9th run outgrows 16 slots, the 33rd 64 and the 129th 256;
        // each resize makes room for four times the runs, rounded up to a power of two.
        var table = new SessionTable(_gate);
        List<int> capacities = [];

        for (int i = 1; i <= 129; i++)
        {
            table.TryAdd(NewRun($"fill-{i}"), out _).Should().BeTrue();
            capacities.Add(table.Capacity);
        }

        int[] expected = Enumerable.Range(1, 129).Select(count => count switch
        {
            <= 8 => 16,
            <= 32 => 64,
            <= 128 => 256,
            _ => 1024,
        }).ToArray();
        capacities.Should().Equal(expected);
    }

    [Fact]
    public void TryRemove_BelowASixteenthOfTheSlots_ShrinksToAQuarterLoad()
    {
        var table = new SessionTable(_gate);
        RunEntry[] runs = Enumerable.Range(0, 10).Select(i => NewRun($"shrink-{i}")).ToArray();
        foreach (RunEntry run in runs)
        {
            table.TryAdd(run, out _);
        }

        table.Capacity.Should().Be(64);
        for (int i = 0; i < 6; i++)
        {
            table.TryRemove(runs[i]).Should().BeTrue();
        }

        table.Capacity.Should().Be(64, "four runs are a sixteenth of 64 slots, not below it");

        table.TryRemove(runs[6]).Should().BeTrue();

        table.Capacity.Should().Be(16);
        runs.Skip(7).Should().OnlyContain(run => table.Find(run.SessionId) == run);
    }

    [Fact]
    public void TryAdd_RemovedSlotFirstInItsProbe_IsReusedSoTheTableDoesNotGrow()
    {
        // Slot 0 is left a tombstone (its neighbour in slot 1 stays); a new run homed at slot 0 must take that slot,
        // the first free one of its probe, not the never-used slot after the neighbour. Then eight runs fill exactly
        // half of the 16 slots, which is still allowed.
        string[] ids = IdsHomedAt(16, 0, 1, 0, 4, 5, 6, 7, 8, 9);
        var table = new SessionTable(_gate);
        RunEntry removed = NewRun(ids[0]);
        table.TryAdd(removed, out _);
        table.TryAdd(NewRun(ids[1]), out _);
        table.TryRemove(removed).Should().BeTrue();

        RunEntry[] added = ids.Skip(2).Select(NewRun).ToArray();
        foreach (RunEntry run in added)
        {
            table.TryAdd(run, out _).Should().BeTrue();
        }

        table.Count.Should().Be(8);
        table.Capacity.Should().Be(16);
        added.Should().OnlyContain(run => table.Find(run.SessionId) == run);
        table.Find(ids[0]).Should().BeNull();
    }

    [Fact]
    public void TryAdd_TwoRemovedSlotsInOneProbe_AreReusedInProbeOrderBeforeAFreshSlot()
    {
        // Slots 0 and 2 are tombstones between runs in slots 1 and 3. A run homed at 0 takes slot 0, the first free
        // slot of its probe, which leaves slot 2 for a run homed there: eight runs then fit in 16 slots. Had the first
        // run taken slot 2, the second would have used the fresh slot 4 and pushed the table past half full.
        string[] ids = IdsHomedAt(16, 0, 1, 2, 3, 0, 2, 5, 6, 7, 8);
        var table = new SessionTable(_gate);
        RunEntry[] first = ids.Take(4).Select(NewRun).ToArray();
        foreach (RunEntry run in first)
        {
            table.TryAdd(run, out _);
        }

        table.TryRemove(first[0]).Should().BeTrue();
        table.TryRemove(first[2]).Should().BeTrue();

        RunEntry[] added = ids.Skip(4).Select(NewRun).ToArray();
        foreach (RunEntry run in added)
        {
            table.TryAdd(run, out _).Should().BeTrue();
        }

        table.Count.Should().Be(8);
        table.Capacity.Should().Be(16);
        added.Append(first[1]).Append(first[3]).Should().OnlyContain(run => table.Find(run.SessionId) == run);
    }

    [Fact]
    public void TryRemove_LastRunOfAMinimumSizeTable_AllocatesNothing()
    {
        // A table at its minimum size has nothing to give back: emptying it must not build a new slot array.
        var table = new SessionTable(_gate);
        RunEntry run = NewRun("only");
        table.TryAdd(run, out _);
        table.TryRemove(run);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            table.TryAdd(run, out _);
            table.TryRemove(run);
        }

        ((GC.GetAllocatedBytesForCurrentThread() - before) / 100).Should().BeLessThan(32);
        table.Capacity.Should().Be(16);
        table.Count.Should().Be(0);
    }

    /// <summary>Finds distinct ids whose cheap hash puts them at the given slots of a table of <paramref name="capacity"/> slots.</summary>
    internal static string[] IdsHomedAt(int capacity, params int[] slots)
    {
        string?[] ids = new string?[slots.Length];
        for (int i = 0, found = 0; found < slots.Length; i++)
        {
            string id = $"homed-{i}";
            int home = SessionTable.Hash(id) & (capacity - 1);
            for (int n = 0; n < slots.Length; n++)
            {
                if (ids[n] is null && slots[n] == home)
                {
                    ids[n] = id;
                    found++;
                    break;
                }
            }
        }

        return ids!;
    }

    private RunEntry NewRun(string sessionId) => Entry(_registry, sessionId, spec: Spec(TimeSpan.FromMinutes(1).Ticks, graceTicks: 0));
}
