using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (g): the watchdog's batched renew of every lease a host holds, <see cref="Leases"/> at once, through
/// <see cref="RedisRunLeaseStore.RenewAsync"/> (one compare-and-extend script per lease, all written before the first
/// answer is awaited), against a floor of the same number of plain <c>EXPIRE</c> commands pipelined on the same
/// connection (no token check, no abort flag read, no reply to parse beyond an integer). One operation is one whole batch: divide by <see cref="Leases"/>
/// for the cost per lease.
/// </summary>
[MemoryDiagnoser]
public class RedisRenewBenchmarks
{
    private static readonly TimeSpan Ttl = new RunLeaseOptions().LeaseTtl;

    private ILeaseServer? _server;
    private ConnectionMultiplexer? _connection;
    private IDatabase _database = null!;
    private RedisRunLeaseStore? _store;
    private RunLease[] _leases = null!;
    private RedisKey[] _floorKeys = null!;
    private Task<bool>[] _floorCalls = null!;

    /// <summary>Gets or sets how many leases the batch renews.</summary>
    [Params(1_000, 10_000)]
    public int Leases { get; set; }

    /// <summary>Gets or sets the server: <c>garnet</c> (in this process) or <c>redis-server</c> (a child process).</summary>
    [ParamsSource(nameof(Servers))]
    public string Server { get; set; } = LeaseServers.Garnet;

    /// <summary>The servers available here, or those <c>RUNSUPERVISOR_BENCH_SERVERS</c> names.</summary>
    /// <returns>The server names.</returns>
    public static IEnumerable<string> Servers() => LeaseServers.Available();

    /// <summary>Starts the server and sets <see cref="Leases"/> plain keys.</summary>
    [GlobalSetup(Target = nameof(Floor))]
    public void SetupFloor()
    {
        Connect();
        _floorKeys = [.. BenchSessionIds.Create("bench-floor", Leases).Select(static id => (RedisKey)id)];
        _floorCalls = new Task<bool>[Leases];
        IBatch batch = _database.CreateBatch();
        Task[] sets = [.. _floorKeys.Select(key => batch.StringSetAsync(key, "bench-host", Ttl))];
        batch.Execute();
        Task.WaitAll(sets);
    }

    /// <summary>Starts the server and acquires <see cref="Leases"/> leases through the store.</summary>
    [GlobalSetup(Target = nameof(Store))]
    public void SetupStore()
    {
        Connect();
        string prefix = "bench" + Guid.NewGuid().ToString("N")[..8];
        _store = new RedisRunLeaseStore(_connection!, new RedisRunLeaseStoreOptions { KeyPrefix = prefix, ChannelPrefix = prefix });
        _leases = new RunLease[Leases];
        string[] sessions = BenchSessionIds.Create("bench-renew", Leases);
        for (int i = 0; i < sessions.Length; i++)
        {
            RunLeaseAcquireResult acquired = _store.AcquireAsync(new RunLeaseRequest(sessions[i], "bench-host", Ttl)).AsTask().GetAwaiter().GetResult();
            _leases[i] = acquired.Lease ?? throw new InvalidOperationException($"Session '{sessions[i]}' is held.");
        }

        // Loads the renew script and checks that every lease is renewed, not lost.
        IReadOnlyList<RunLeaseRenewResult> results = _store.RenewAsync(_leases, Ttl).AsTask().GetAwaiter().GetResult();
        if (results.Any(static r => r.Status != RunLeaseRenewStatus.Renewed))
        {
            throw new InvalidOperationException("A lease was not renewed.");
        }
    }

    /// <summary>Stops whatever was started.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _store?.Dispose();
        _connection?.Dispose();
        _server?.Dispose();
    }

    /// <summary>Floor: <see cref="Leases"/> <c>EXPIRE</c> commands pipelined, then all answers awaited.</summary>
    /// <returns>The batch's completion.</returns>
    [Benchmark(Baseline = true, Description = "Floor: EXPIRE x N pipelined")]
    public async Task Floor()
    {
        for (int i = 0; i < _floorCalls.Length; i++)
        {
            _floorCalls[i] = _database.KeyExpireAsync(_floorKeys[i], Ttl);
        }

        bool[] renewed = await Task.WhenAll(_floorCalls).ConfigureAwait(false);
        if (!renewed[^1])
        {
            throw new InvalidOperationException("A floor key was gone.");
        }
    }

    /// <summary><see cref="RedisRunLeaseStore.RenewAsync"/> of every lease in one batch.</summary>
    /// <returns>The results.</returns>
    [Benchmark(Description = "RedisRunLeaseStore.RenewAsync (one batch)")]
    public async Task<IReadOnlyList<RunLeaseRenewResult>> Store()
    {
        IReadOnlyList<RunLeaseRenewResult> results = await _store!.RenewAsync(_leases, Ttl).ConfigureAwait(false);
        if (results[^1].Status != RunLeaseRenewStatus.Renewed)
        {
            throw new InvalidOperationException("A lease was lost.");
        }

        return results;
    }

    private void Connect()
    {
        _server = LeaseServers.Start(Server);
        _connection = LeaseServers.Connect(_server);
        _database = _connection.GetDatabase();
    }
}
