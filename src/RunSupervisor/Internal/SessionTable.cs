using System.Buffers.Binary;
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
/// nanoseconds, and every query and start does one) keyed by secrets drawn once per process, so its values cannot be
/// worked out offline. Session ids may come from clients, and colliding ids would pile sessions into one chain, so a probe
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
    private static readonly ulong SeedA = NewSeed();
    private static readonly ulong SeedB = NewSeed();
    private static readonly ulong SeedC = NewSeed();

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

    /// <summary>
    /// The cheap hash of a session id: the id's chars read eight at a time as two 64-bit words, folded by a full
    /// 64 × 64 → 128-bit multiply (the high half xor the low) with per-process secrets, then once more with the length.
    /// </summary>
    /// <param name="sessionId">The session id.</param>
    /// <returns>The hash.</returns>
    /// <remarks>
    /// A hash whose rounds add or xor each char into a rotated state (djb2 and its kin) is nearly linear in a small
    /// change of input: ids of one shape (<c>session-4635</c> and <c>session-15181</c>, <c>t3/129</c> and
    /// <c>t2/12f</c>) cancel each other's differences, and one collision brings a family of dozens, for some seeds
    /// thousands in 100,000 ids. Every bit of a wide product's high half xor its low half depends on every bit of both
    /// factors, and not linearly on either, so each step scrambles the whole state before the next words arrive.
    /// </remarks>
    public static int Hash(string sessionId) => Hash(sessionId, SeedA, SeedB, SeedC);

    /// <summary>The hash of <see cref="Hash(string)"/> under the given secrets; for tests that try many processes' seeds.</summary>
    /// <param name="sessionId">The session id.</param>
    /// <param name="seedA">The secret mixed into every first word.</param>
    /// <param name="seedB">The secret the state starts from.</param>
    /// <param name="seedC">The secret of the final fold.</param>
    /// <returns>The hash.</returns>
    internal static int Hash(string sessionId, ulong seedA, ulong seedB, ulong seedC)
    {
        ReadOnlySpan<char> chars = sessionId.AsSpan();
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<char, ulong>(chars);
        ulong h = seedB;
        int i = 0;
        for (; i + 1 < words.Length; i += 2)
        {
            h = Fold(words[i] ^ seedA, words[i + 1] ^ h);
        }

        // At most one whole word and three chars are left.
        ulong last = i < words.Length ? words[i] : 0;
        ulong tail = 0;
        for (int c = words.Length * 4; c < chars.Length; c++)
        {
            tail = (tail << 16) | chars[c];
        }

        h = Fold(last ^ seedA, tail ^ h);

        // The length goes in last: a NUL char reads as zero bits, so without it "\0a" would fold as "a" does.
        h = Fold(h ^ seedC, (ulong)chars.Length ^ seedB);
        return (int)(h ^ (h >> 32));
    }

    /// <summary>A per-process secret: random, and odd so that it is never zero; also what tests draw other processes' secrets with.</summary>
    internal static ulong NewSeed()
    {
        Span<byte> bytes = stackalloc byte[sizeof(ulong)];
        RandomNumberGenerator.Fill(bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes) | 1;
    }

    /// <summary>The 128-bit product of two words, its high half xor its low half.</summary>
    private static ulong Fold(ulong a, ulong b)
    {
        ulong high = Math.BigMul(a, b, out ulong low);
        return high ^ low;
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
