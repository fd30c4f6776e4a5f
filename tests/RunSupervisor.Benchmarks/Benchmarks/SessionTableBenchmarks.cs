using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (h): does the registry's hand-written session table (<c>SessionTable</c>: open addressing, writes under the
/// registry's gate, lock-free reads) earn its keep against the simplest alternatives? In the same run, on a table
/// already holding <see cref="Entries"/> runs: one add + lookup + remove (a start and its release), and a lookup alone
/// (the lock-free query every message and heartbeat makes) of a present and of an absent session, for
/// <list type="bullet">
/// <item><c>ConcurrentDictionary&lt;string, RunEntry&gt;</c> (<c>StringComparer.Ordinal</c>, as the floor), the
/// baseline, with its own locking only;</item>
/// <item>the same written under a <see cref="Lock"/>, as the registry had it before the table (every registry write
/// holds its gate anyway);</item>
/// <item><c>Dictionary&lt;string, RunEntry&gt;</c> with every read and write under a <see cref="Lock"/>;</item>
/// <item><c>SessionTable</c>, written under a <see cref="Lock"/> (it requires one), read without.</item>
/// </list>
/// </summary>
/// <remarks>
/// <para>Fairness: every structure holds the same <c>RunEntry</c> objects under the same id strings, all made before the
/// measurement. Hashing is counted as the registry pays it: a start computes <c>SessionTable.Hash</c> once and keeps it
/// in the entry, so the table's add + lookup + remove hashes once (the entry made beforehand carries the same value);
/// a query hashes its id every call, so the table's lookups do too. The dictionaries hash on every call, as they must.
/// Removal is identity-checked everywhere, as the registry's is: <c>TryRemove(KeyValuePair)</c> for the concurrent
/// dictionary, <c>Remove(key, out value)</c> and a check for the plain one.</para>
/// <para>Needs <c>&lt;InternalsVisibleTo Include="RunSupervisor.Benchmarks" /&gt;</c> in <c>src/RunSupervisor</c>; the
/// project compiles this class only when that is there.</para>
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class SessionTableBenchmarks : IDisposable
{
    private const string Cycle = "add + lookup + remove";
    private const string Hit = "lookup, present";
    private const string Miss = "lookup, absent";
    private const string NewSessionId = "bench-session-table";
    private const string AbsentSessionId = "idle-session-table";

    private readonly Lock _gate = new();
    private ActiveRunRegistry _owner = null!;
    private RunEntry _entry = null!;
    private string _presentSessionId = null!;
    private ConcurrentDictionary<string, RunEntry> _concurrent = null!;
    private Dictionary<string, RunEntry> _dictionary = null!;
    private SessionTable _table = null!;

    /// <summary>Gets or sets how many runs the table holds while the measured operation runs.</summary>
    [Params(1_000, 100_000)]
    public int Entries { get; set; }

    /// <summary>Fills a concurrent dictionary.</summary>
    [GlobalSetup(Targets = [nameof(ConcurrentCycle), nameof(ConcurrentGatedCycle), nameof(ConcurrentHit), nameof(ConcurrentMiss)])]
    public void SetupConcurrent()
    {
        _concurrent = new ConcurrentDictionary<string, RunEntry>(StringComparer.Ordinal);
        foreach (RunEntry entry in CreateEntries())
        {
            _concurrent.TryAdd(entry.SessionId, entry);
        }
    }

    /// <summary>Fills a plain dictionary.</summary>
    [GlobalSetup(Targets = [nameof(DictionaryCycle), nameof(DictionaryHit), nameof(DictionaryMiss)])]
    public void SetupDictionary()
    {
        _dictionary = new Dictionary<string, RunEntry>(StringComparer.Ordinal);
        foreach (RunEntry entry in CreateEntries())
        {
            _dictionary.Add(entry.SessionId, entry);
        }
    }

    /// <summary>Fills a session table, under its gate.</summary>
    [GlobalSetup(Targets = [nameof(TableCycle), nameof(TableHit), nameof(TableMiss)])]
    public void SetupTable()
    {
        _table = new SessionTable(_gate);
        lock (_gate)
        {
            foreach (RunEntry entry in CreateEntries())
            {
                _table.TryAdd(entry, out _);
            }
        }
    }

    /// <summary>Disposes the entries' owner.</summary>
    [GlobalCleanup]
    public void Dispose()
    {
        _owner?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary><c>TryAdd</c>, <c>TryGetValue</c>, identity-checked <c>TryRemove</c>.</summary>
    /// <returns>Whether the entry was found.</returns>
    [Benchmark(Baseline = true, Description = "ConcurrentDictionary")]
    [BenchmarkCategory(Cycle)]
    public bool ConcurrentCycle()
    {
        _concurrent.TryAdd(NewSessionId, _entry);
        _concurrent.TryGetValue(NewSessionId, out RunEntry? found);
        _concurrent.TryRemove(KeyValuePair.Create(NewSessionId, _entry));
        return found is not null;
    }

    /// <summary>The same, the two writes under a <see cref="Lock"/>.</summary>
    /// <returns>Whether the entry was found.</returns>
    [Benchmark(Description = "ConcurrentDictionary, writes under a Lock")]
    [BenchmarkCategory(Cycle)]
    public bool ConcurrentGatedCycle()
    {
        lock (_gate)
        {
            _concurrent.TryAdd(NewSessionId, _entry);
        }

        _concurrent.TryGetValue(NewSessionId, out RunEntry? found);
        lock (_gate)
        {
            _concurrent.TryRemove(KeyValuePair.Create(NewSessionId, _entry));
        }

        return found is not null;
    }

    /// <summary><c>TryAdd</c>, <c>TryGetValue</c>, <c>Remove</c> + identity check, each under a <see cref="Lock"/>.</summary>
    /// <returns>Whether the entry was found.</returns>
    [Benchmark(Description = "Dictionary + Lock")]
    [BenchmarkCategory(Cycle)]
    public bool DictionaryCycle()
    {
        RunEntry? found;
        lock (_gate)
        {
            _dictionary.TryAdd(NewSessionId, _entry);
        }

        lock (_gate)
        {
            _dictionary.TryGetValue(NewSessionId, out found);
        }

        lock (_gate)
        {
            if (_dictionary.Remove(NewSessionId, out RunEntry? removed) && !ReferenceEquals(removed, _entry))
            {
                _dictionary.Add(NewSessionId, removed);
            }
        }

        return found is not null;
    }

    /// <summary>What a start and its release do: hash once, <c>TryAdd</c> under the gate, <c>Find</c> lock-free, <c>TryRemove</c> under the gate.</summary>
    /// <returns>Whether the entry was found.</returns>
    [Benchmark(Description = "SessionTable")]
    [BenchmarkCategory(Cycle)]
    public bool TableCycle()
    {
        int hash = SessionTable.Hash(NewSessionId);
        lock (_gate)
        {
            _table.TryAdd(_entry, out _);
        }

        RunEntry? found = _table.Find(NewSessionId, hash);
        lock (_gate)
        {
            _table.TryRemove(_entry);
        }

        return found is not null;
    }

    /// <summary><c>TryGetValue</c> of a present session.</summary>
    /// <returns>Whether the session was found.</returns>
    [Benchmark(Baseline = true, Description = "ConcurrentDictionary")]
    [BenchmarkCategory(Hit)]
    public bool ConcurrentHit() => _concurrent.TryGetValue(_presentSessionId, out _);

    /// <summary><c>TryGetValue</c> of a present session under the <see cref="Lock"/>.</summary>
    /// <returns>Whether the session was found.</returns>
    [Benchmark(Description = "Dictionary + Lock")]
    [BenchmarkCategory(Hit)]
    public bool DictionaryHit()
    {
        lock (_gate)
        {
            return _dictionary.TryGetValue(_presentSessionId, out _);
        }
    }

    /// <summary><c>Find</c> of a present session, lock-free, hashing the id as a query does.</summary>
    /// <returns>Whether the session was found.</returns>
    [Benchmark(Description = "SessionTable")]
    [BenchmarkCategory(Hit)]
    public bool TableHit() => _table.Find(_presentSessionId) is not null;

    /// <summary><c>TryGetValue</c> of an absent session.</summary>
    /// <returns>Whether the session was found (never).</returns>
    [Benchmark(Baseline = true, Description = "ConcurrentDictionary")]
    [BenchmarkCategory(Miss)]
    public bool ConcurrentMiss() => _concurrent.TryGetValue(AbsentSessionId, out _);

    /// <summary><c>TryGetValue</c> of an absent session under the <see cref="Lock"/>.</summary>
    /// <returns>Whether the session was found (never).</returns>
    [Benchmark(Description = "Dictionary + Lock")]
    [BenchmarkCategory(Miss)]
    public bool DictionaryMiss()
    {
        lock (_gate)
        {
            return _dictionary.TryGetValue(AbsentSessionId, out _);
        }
    }

    /// <summary><c>Find</c> of an absent session, lock-free.</summary>
    /// <returns>Whether the session was found (never).</returns>
    [Benchmark(Description = "SessionTable")]
    [BenchmarkCategory(Miss)]
    public bool TableMiss() => _table.Find(AbsentSessionId) is not null;

    /// <summary>The <see cref="Entries"/> runs every structure is filled with, and the one the cycle adds and removes.</summary>
    private List<RunEntry> CreateEntries()
    {
        _owner = new ActiveRunRegistry();
        var spec = new StartSpec(WarmRegistries.Timeout.Ticks, WarmRegistries.GracePeriod.Ticks, idleTicks: 0, queueTimeoutTicks: 0, SessionBusyBehavior.Reject, background: false, lane: 0);
        RunEntry Create(string sessionId) => new(_owner, sessionId, SessionTable.Hash(sessionId), startedAtTicks: 0, DateTimeOffset.UnixEpoch.UtcTicks, spec);

        string[] ids = WarmRegistries.WarmSessionIds(Entries);
        _presentSessionId = ids[0];
        _entry = Create(NewSessionId);
        return [.. ids.Select(Create)];
    }
}
