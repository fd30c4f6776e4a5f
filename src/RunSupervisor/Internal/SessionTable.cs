using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace RunSupervisor;

/// <summary>
/// The registry's map from session id to its active run: an open-addressing hash table (linear probing) that stores
/// the entries themselves. Reads take no lock; writes happen only under the run table's gate, and assert it.
/// </summary>
/// <remarks>
/// <para>Why not <c>ConcurrentDictionary</c>: every write already happens under the gate, so its own
/// per-bucket locks and per-entry nodes were paid for nothing, on every start and every release.</para>
/// <para>How lock-free reads stay correct:</para>
/// <list type="bullet">
/// <item>A slot holds <see langword="null"/> (never used), <see cref="Tombstone"/> (a removed run) or an entry, and
/// is written with a volatile write after the entry is complete; a supersede replaces the entry in place, so a
/// reader sees the old run or the new one, never neither.</item>
/// <item>At most half the slots are ever non-null, so every probe reaches a <see langword="null"/> and stops.</item>
/// <item>A removal writes <see langword="null"/> instead of a tombstone only when the next slot is null: no probe
/// continues past that slot, and a later insert takes the first free slot of its probe, so chains stay unbroken.</item>
/// <item>A resize builds a new array and publishes it; the old one is never written again, so a reader still
/// holding it sees the table as it was at the resize.</item>
/// </list>
/// <para>Hashing: the slot index comes from <see cref="Hash(string)"/>, a cheap hash (a lookup is a handful of
/// nanoseconds, and every query and start does one) seeded once per process, so its values cannot be worked out
/// offline. Session ids may come from clients, and colliding ids would pile sessions into one chain, so a probe
/// longer than <see cref="MaxProbeBeforeRandomizing"/> slots (an insert's, or a lookup's, which flags it for the next
/// write) switches the table, once, to <see cref="string.GetHashCode()"/> (Marvin, randomized per process) for slot
/// indexes. Each run keeps its cheap hash either way, as a filter before comparing ids. The hash mode travels with the
/// slot array, so a reader always probes with the hash its array was built with.</para>
/// </remarks>
internal sealed class SessionTable
{
    /// <summary>
    /// The longest probe an insert accepts before the table stops trusting <see cref="Hash(string)"/>. With at most half
    /// the slots in use, chance alone essentially never makes a probe this long; crafted session ids do.
    /// </summary>
    internal const int MaxProbeBeforeRandomizing = 100;

    private const int MinCapacity = 16;
    private static readonly object Tombstone = new();
    private static readonly uint SeedA = (uint)RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);
    private static readonly uint SeedB = (uint)RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);

    private readonly Lock _gate;
    private Slots _table = new(new object?[MinCapacity], randomized: false);
    private int _count;
    private int _used;

    // Set by a lookup that probed too far (a lookup cannot resize); the next insert then switches to the randomized hash.
    private volatile bool _suspicious;

    /// <summary>Initializes a new instance of the <see cref="SessionTable"/> class.</summary>
    /// <param name="gate">The lock every write is made under.</param>
    public SessionTable(Lock gate) => _gate = gate;

    /// <summary>Gets the number of runs in the table; lock-free.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the number of slots; for tests of the resize policy.</summary>
    internal int Capacity => _table.Items.Length;

    /// <summary>Gets a value indicating whether slot indexes come from the randomized hash; for tests.</summary>
    internal bool IsRandomized => _table.Randomized;

    /// <summary>The cheap hash of a session id: two interleaved chains over pairs of chars from per-process seeds, then a finalizer for the low bits the index uses.</summary>
    /// <param name="sessionId">The session id.</param>
    /// <returns>The hash.</returns>
    public static int Hash(string sessionId)
    {
        ReadOnlySpan<uint> pairs = MemoryMarshal.Cast<char, uint>(sessionId.AsSpan());
        uint a = SeedA ^ (uint)sessionId.Length;
        uint b = SeedB;
        int i = 0;
        for (; i + 1 < pairs.Length; i += 2)
        {
            a = (BitOperations.RotateLeft(a, 5) + a) ^ pairs[i];
            b = (BitOperations.RotateLeft(b, 5) + b) ^ pairs[i + 1];
        }

        if (i < pairs.Length)
        {
            a = (BitOperations.RotateLeft(a, 5) + a) ^ pairs[i];
        }

        if ((sessionId.Length & 1) != 0)
        {
            b = (BitOperations.RotateLeft(b, 5) + b) ^ sessionId[^1];
        }

        uint h = a + (b * 0x2545F491u);
        h ^= h >> 15;
        h *= 0x2C1B3C6Du;
        h ^= h >> 12;
        return (int)h;
    }

    /// <summary>Finds the session's run; lock-free.</summary>
    public RunEntry? Find(string sessionId) => Find(sessionId, Hash(sessionId));

    /// <summary>Finds the session's run, given <see cref="Hash(string)"/> of its id; lock-free.</summary>
    public RunEntry? Find(string sessionId, int hash)
    {
        Slots table = Volatile.Read(ref _table);
        object?[] slots = table.Items;
        int mask = slots.Length - 1;
        int probed = 0;
        for (int i = table.IndexHash(sessionId, hash) & mask; ; i = (i + 1) & mask, probed++)
        {
            object? entry = Volatile.Read(ref slots[i]);
            if (entry is null)
            {
                if (probed > MaxProbeBeforeRandomizing && !table.Randomized)
                {
                    _suspicious = true;
                }

                return null;
            }

            if (entry != Tombstone)
            {
                var run = (RunEntry)entry;
                if (run.SessionHash == hash && string.Equals(run.SessionId, sessionId, StringComparison.Ordinal))
                {
                    return run;
                }
            }
        }
    }

    /// <summary>Adds <paramref name="run"/> unless its session has a run; under the gate.</summary>
    /// <param name="run">The new run.</param>
    /// <param name="current">The session's run when the method returns <see langword="false"/>.</param>
    /// <returns><see langword="true"/> if the run was added.</returns>
    public bool TryAdd(RunEntry run, [NotNullWhen(false)] out RunEntry? current)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        Slots table = _table;
        object?[] slots = table.Items;
        int mask = slots.Length - 1;
        int free = -1;
        int probed = 0;
        for (int i = table.IndexHash(run) & mask; ; i = (i + 1) & mask, probed++)
        {
            object? entry = slots[i];
            if (entry is null)
            {
                if (free < 0)
                {
                    free = i;
                }

                break;
            }

            if (entry == Tombstone)
            {
                if (free < 0)
                {
                    free = i;
                }
            }
            else if (IsSameSession((RunEntry)entry, run))
            {
                current = (RunEntry)entry;
                return false;
            }
        }

        current = null;
        bool randomize = (probed > MaxProbeBeforeRandomizing || _suspicious) && !table.Randomized;
        if (randomize || (slots[free] is null && _used + 1 > slots.Length / 2))
        {
            // Grow (or sweep out tombstones, or change hash), then insert into the fresh table.
            Resize(TargetCapacity(_count + 1), randomize || table.Randomized);
            Insert(_table, run);
            _used++;
            _count++;
            return true;
        }

        if (slots[free] is null)
        {

            _used++;
        }

        Volatile.Write(ref slots[free], run);
        _count++;
        return true;
    }

    /// <summary>Puts <paramref name="replacement"/> in <paramref name="run"/>'s slot if <paramref name="run"/> is there; under the gate.</summary>
    /// <returns><see langword="true"/> if <paramref name="run"/> was replaced.</returns>
    public bool TryReplace(RunEntry run, RunEntry replacement)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        Debug.Assert(IsSameSession(run, replacement), "A run is only replaced by a run of the same session.");
        int index = IndexOf(run);
        if (index < 0)
        {
            return false;
        }

        Volatile.Write(ref _table.Items[index], replacement);
        return true;
    }

    /// <summary>Removes <paramref name="run"/> if it is this very entry's slot; under the gate.</summary>
    /// <returns><see langword="true"/> if <paramref name="run"/> was removed.</returns>
    public bool TryRemove(RunEntry run)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        int index = IndexOf(run);
        if (index < 0)
        {
            return false;
        }

        object?[] slots = _table.Items;
        if (slots[(index + 1) & (slots.Length - 1)] is null)
        {
            Volatile.Write(ref slots[index], null);
            _used--;
        }
        else
        {
            Volatile.Write(ref slots[index], Tombstone);
        }

        _count--;

        // Give memory back after a burst (a million runs drained to a few), but not on every small dip.
        if (slots.Length > MinCapacity && _count < slots.Length / 16)
        {
            Resize(TargetCapacity(_count), _table.Randomized);
        }

        return true;
    }

    /// <summary>Gets an enumerator over the runs in the table at the moment of the call's array read; lock-free.</summary>
    public Enumerator GetEnumerator() => new(Volatile.Read(ref _table).Items);

    private static bool IsSameSession(RunEntry a, RunEntry b)
        => a.SessionHash == b.SessionHash && string.Equals(a.SessionId, b.SessionId, StringComparison.Ordinal);

    /// <summary>A power of two that holds <paramref name="count"/> runs at a quarter load: room to grow before the next resize.</summary>
    private static int TargetCapacity(int count) => Math.Max(MinCapacity, (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, count) * 4));

    private static void Insert(Slots table, RunEntry run)
    {
        object?[] slots = table.Items;
        int mask = slots.Length - 1;
        int i = table.IndexHash(run) & mask;
        while (slots[i] is not null)
        {
            i = (i + 1) & mask;
        }

        Volatile.Write(ref slots[i], run);
    }

    private int IndexOf(RunEntry run)
    {
        Slots table = _table;
        object?[] slots = table.Items;
        int mask = slots.Length - 1;
        for (int i = table.IndexHash(run) & mask; ; i = (i + 1) & mask)
        {
            object? entry = slots[i];
            if (entry is null)
            {
                return -1;
            }

            if (entry == run)
            {
                return i;
            }
        }
    }

    private void Resize(int capacity, bool randomized)
    {
        var table = new Slots(new object?[capacity], randomized);
        foreach (object? entry in _table.Items)
        {
            if (entry is not null && entry != Tombstone)
            {
                Insert(table, (RunEntry)entry);
            }
        }

        _used = _count;
        Volatile.Write(ref _table, table);
    }

    /// <summary>A slot array and the hash its indexes come from: published together, so readers never mix them.</summary>
    private sealed class Slots(object?[] items, bool randomized)
    {
        public object?[] Items { get; } = items;

        public bool Randomized { get; } = randomized;

        public int IndexHash(string sessionId, int hash) => Randomized ? sessionId.GetHashCode() : hash;

        public int IndexHash(RunEntry run) => Randomized ? run.SessionId.GetHashCode() : run.SessionHash;
    }

    /// <summary>Enumerates one array's runs, skipping empty and removed slots.</summary>
    public struct Enumerator
    {
        private readonly object?[] _slots;
        private int _index;

        internal Enumerator(object?[] slots)
        {
            _slots = slots;
            _index = -1;
            Current = null!;
        }

        public RunEntry Current { get; private set; }

        public bool MoveNext()
        {
            while (++_index < _slots.Length)
            {
                object? entry = Volatile.Read(ref _slots[_index]);
                if (entry is not null && entry != Tombstone)
                {
                    Current = (RunEntry)entry;
                    return true;
                }
            }

            return false;
        }
    }
}
