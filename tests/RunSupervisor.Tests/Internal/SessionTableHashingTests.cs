using System.Globalization;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The session map's hashing (internal): the cheap hash spreads ids over the low bits a slot index uses and rarely
/// repeats a full value; ids that share a full hash are still told apart; and the switch to the randomized hash
/// happens exactly when a probe passes <see cref="SessionTable.MaxProbeBeforeRandomizing"/> slots, not at it.
/// </summary>
/// <remarks>
/// The hash is seeded per process, so no test can expect particular values: these search for ids with the property
/// they need (a shared hash, a given home slot) at run time, and check statistical properties with bounds that a
/// sound hash misses with a probability far below one in a billion.
/// </remarks>
public sealed class SessionTableHashingTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    // The table asserts that its writers hold its gate: every test holds it throughout, on its one thread.
    private readonly Lock _gate = new();

    public SessionTableHashingTests() => _gate.Enter();

    public void Dispose()
    {
        _gate.Exit();
        _registry.Dispose();
    }

    [Fact]
    public void Hash_IdsDifferingOnlyInTheirLastChar_VaryEveryLowBit()
    {
        // Ids such as "tenant-1" .. "tenant-9" differ only at the end, and a 16-slot table indexes by the low 4 bits:
        // if any low bit ignored the last char, such ids would pile into a few slots. Every length parity matters,
        // as the last char lands in a different half of a different chain.
        const string Prefix = "abcdefghijklmno";
        List<string> stuckBits = [];
        for (int length = 1; length <= Prefix.Length + 1; length++)
        {
            int[] hashes = Enumerable.Range(0, 512)
                .Select(k => SessionTable.Hash(Prefix[..(length - 1)] + (char)('0' + k)))
                .ToArray();
            for (int bit = 0; bit < 8; bit++)
            {
                int set = hashes.Count(h => (h & (1 << bit)) != 0);
                if (set == 0 || set == hashes.Length)
                {
                    stuckBits.Add($"length {length}, bit {bit}");
                }
            }
        }

        stuckBits.Should().BeEmpty("512 ids leave a sound hash's bit fixed with probability 2^-511");
    }

    [Theory]
    [InlineData("session-{0}")]
    [InlineData("user:{1}:chat:{2}")]
    [InlineData("t{3}/{0:x}")]
    public void Hash_ManyDistinctIdsOfOneShape_RarelyShareAFullHashUnderAnySecrets(string shape)
    {
        // A uniform 32-bit hash of 100,000 ids repeats about 1.2 values (n^2 / 2^33), and 15 or more with a
        // probability near 10^-12. A hash nearly linear in a small change of input repeats in families: ids of one
        // shape cancel each other's differences, and a cheap rotate-and-xor hash repeated hundreds or thousands of
        // values here under some secrets (a few in a thousand for the first shape, one in five for the second). So
        // the shapes are the ones that exposed it, and each is tried under eight processes' worth of fresh secrets.
        const int Ids = 100_000;
        string[] ids = Enumerable.Range(0, Ids)
            .Select(i => string.Format(CultureInfo.InvariantCulture, shape, i, i % 1000, i / 1000, i % 7))
            .ToArray();
        ids.Distinct().Should().HaveCount(Ids, "the shape makes distinct ids");
        List<string> failures = [];
        for (int trial = 0; trial < 8; trial++)
        {
            (ulong a, ulong b, ulong c) = (SessionTable.NewSeed(), SessionTable.NewSeed(), SessionTable.NewSeed());
            var seen = new HashSet<int>();
            int repeats = ids.Count(id => !seen.Add(SessionTable.Hash(id, a, b, c)));
            if (repeats >= 15)
            {
                failures.Add($"{repeats} repeats under secrets {a:X16} {b:X16} {c:X16}");
            }
        }

        failures.Should().BeEmpty();
    }

    [Fact]
    public void Hash_IdsDifferingOnlyInLengthOrNulChars_Differ()
    {
        // NUL chars read as zero bits and an id's last chars are packed into one word, so only the length tells "" from
        // "\0", or "a" from "\0a"; and where a char sits in the packed word must count, as "a\0b" is not "ab\0".
        string[] ids = ["", "\0", "\0\0", "\0\0\0\0", "\0\0\0\0\0", "a", "\0a", "a\0", "ab", "a\0b", "ab\0", "\0ab", "abcd", "abcd\0", "\0abcd"];

        ids.Select(SessionTable.Hash).Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public void TryAddAndFind_TwoSessionsWithTheSameHash_AreKeptApart()
    {
        (string first, string second) = TwoIdsWithTheSameHash();
        int hash = SessionTable.Hash(first);
        var table = new SessionTable(_gate);
        RunEntry firstRun = NewRun(first);
        RunEntry secondRun = NewRun(second);

        table.TryAdd(firstRun, out _).Should().BeTrue();
        table.TryAdd(secondRun, out RunEntry? current).Should().BeTrue("a shared hash is not a shared session");

        current.Should().BeNull();
        table.Count.Should().Be(2);
        table.Find(first).Should().BeSameAs(firstRun);
        table.Find(second).Should().BeSameAs(secondRun);
        table.Find(second, hash).Should().BeSameAs(secondRun);
        table.TryRemove(firstRun).Should().BeTrue();
        table.Find(first).Should().BeNull();
        table.Find(second).Should().BeSameAs(secondRun);
    }

    [Theory]
    [InlineData(SessionTable.MaxProbeBeforeRandomizing, false)]
    [InlineData(SessionTable.MaxProbeBeforeRandomizing + 1, true)]
    public void Find_MissingIdBehindOccupiedSlots_FlagsTheNextInsertOnlyPastTheLimit(int occupied, bool randomized)
    {
        // Slots 0 .. occupied-1 of a 256-slot table hold one run each, in their home slots; a lookup of a missing id
        // homed at slot 0 walks all of them before it reaches a null.
        string[] ids = TableWithOccupiedSlots(occupied, extraHomes: [0, 200], out SessionTable table);

        table.Find(ids[occupied]).Should().BeNull();
        table.TryAdd(NewRun(ids[occupied + 1]), out _).Should().BeTrue("an insert homed far away probes nothing");

        table.IsRandomized.Should().Be(randomized);
        ids.Take(occupied).Append(ids[occupied + 1]).Should().OnlyContain(id => table.Find(id) != null);
    }

    [Theory]
    [InlineData(SessionTable.MaxProbeBeforeRandomizing, false)]
    [InlineData(SessionTable.MaxProbeBeforeRandomizing + 1, true)]
    public void TryAdd_ProbeAcrossOccupiedSlots_SwitchesToTheRandomizedHashOnlyPastTheLimit(int occupied, bool randomized)
    {
        string[] ids = TableWithOccupiedSlots(occupied, extraHomes: [0], out SessionTable table);
        table.IsRandomized.Should().BeFalse("every run so far went straight to its home slot");

        table.TryAdd(NewRun(ids[occupied]), out _).Should().BeTrue();

        table.IsRandomized.Should().Be(randomized);
        table.Count.Should().Be(occupied + 1);
        ids.Should().OnlyContain(id => table.Find(id) != null);
    }

    [Fact]
    public void Find_MissingIdWithAShortProbe_DoesNotFlagTheTable()
    {
        var table = new SessionTable(_gate);
        table.TryAdd(NewRun("present"), out _);

        table.Find("absent").Should().BeNull();
        table.TryAdd(NewRun("next"), out _);

        table.IsRandomized.Should().BeFalse("only a long probe is a sign of crafted ids");
    }

    /// <summary>
    /// A 256-slot table whose slots 0 .. <paramref name="occupied"/>-1 hold a run each; returns those runs' ids, then
    /// one id not in the table per entry of <paramref name="extraHomes"/>, homed at that slot.
    /// </summary>
    private string[] TableWithOccupiedSlots(int occupied, int[] extraHomes, out SessionTable table)
    {
        const int Slots = 256;
        string[] ids = SessionTableTests.IdsHomedAt(Slots, [.. Enumerable.Range(0, occupied), .. extraHomes]);
        table = new SessionTable(_gate);

        // In slot order, so each run finds its home slot free and no insert probes.
        foreach (string id in ids.Take(occupied))
        {
            table.TryAdd(NewRun(id), out _).Should().BeTrue();
        }

        table.Capacity.Should().Be(Slots);
        return ids;
    }

    /// <summary>
    /// Two distinct ids with the same full cheap hash: a birthday search over random ids needs about 80,000 of them.
    /// Random rather than numbered ids, as ids that differ in a few trailing digits can collide far more rarely.
    /// </summary>
    private static (string First, string Second) TwoIdsWithTheSameHash()
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        var random = new Random(42);
        var byHash = new Dictionary<int, string>();
        while (true)
        {
            string id = string.Create(16, random, (chars, r) =>
            {
                for (int i = 0; i < chars.Length; i++)
                {
                    chars[i] = Alphabet[r.Next(Alphabet.Length)];
                }
            });
            int hash = SessionTable.Hash(id);
            if (!byHash.TryAdd(hash, id) && byHash[hash] != id)
            {
                return (byHash[hash], id);
            }
        }
    }

    private RunEntry NewRun(string sessionId) => Entry(_registry, sessionId, spec: Spec(TimeSpan.FromMinutes(1).Ticks, graceTicks: 0));
}
