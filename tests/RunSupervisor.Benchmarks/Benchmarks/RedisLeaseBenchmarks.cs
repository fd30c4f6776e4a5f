using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (f): a leased run's start + release against a real server on loopback (<see cref="Server"/>: Garnet in this
/// process, or <c>redis-server</c> as a child process when it is on PATH), against the floor of two raw
/// StackExchange.Redis round trips on the same connection: <c>SET key val NX PX ttl</c>, then <c>DEL key</c>.
/// Target: <c>StartAsync</c> + <c>Dispose</c> ≤ 1.15 × the floor's time.
/// </summary>
/// <remarks>
/// <para>The registry awaits the acquire (its start is not published before the store answers) but not the release: the
/// release script is written to the connection inside <c>Dispose</c> and the next start's acquire is pipelined behind
/// it. The row "Floor, DEL not awaited" is the floor written the same way, so the two effects can be told apart: the
/// target is against the fully awaited floor, the baseline.</para>
/// <para>"Store alone" is <see cref="RedisRunLeaseStore.AcquireAsync"/> + <see cref="RedisRunLeaseStore.ReleaseAsync"/>
/// awaited, without a registry: the Lua scripts' cost (fencing token, owner, pub/sub release message) over raw commands.</para>
/// </remarks>
[MemoryDiagnoser]
public class RedisLeaseBenchmarks
{
    private const string SessionId = "bench-session-lease";

    private static readonly TimeSpan Ttl = new RunLeaseOptions().LeaseTtl;

    private ILeaseServer? _server;
    private ConnectionMultiplexer? _connection;
    private IDatabase _database = null!;
    private RedisRunLeaseStore? _store;
    private ActiveRunRegistry? _registry;
    private RedisKey _floorKey;
    private object[] _setArguments = null!;
    private RunLeaseRequest _request = null!;

    /// <summary>Gets or sets the server: <c>garnet</c> (in this process) or <c>redis-server</c> (a child process).</summary>
    [ParamsSource(nameof(Servers))]
    public string Server { get; set; } = LeaseServers.Garnet;

    /// <summary>The servers available here, or those <c>RUNSUPERVISOR_BENCH_SERVERS</c> names.</summary>
    /// <returns>The server names.</returns>
    public static IEnumerable<string> Servers() => LeaseServers.Available();

    /// <summary>Starts the server and opens the connection the floor uses.</summary>
    [GlobalSetup(Targets = [nameof(Floor), nameof(FloorDeleteNotAwaited)])]
    public void SetupFloor()
    {
        Connect();
        _floorKey = "bench-floor:{" + SessionId + "}:lease";
        _setArguments = [_floorKey.ToString(), "bench-host", "NX", "PX", (long)Ttl.TotalMilliseconds];
        _database.KeyDelete(_floorKey);
    }

    /// <summary>Starts the server and makes a store on it, its scripts loaded.</summary>
    [GlobalSetup(Target = nameof(StoreAlone))]
    public void SetupStore()
    {
        Connect();
        _store = CreateStore();
        _request = new RunLeaseRequest(SessionId, "bench-host", Ttl);

        // Loads the acquire and release scripts, so no measured call pays the NOSCRIPT fallback.
        StoreAlone().GetAwaiter().GetResult();
    }

    /// <summary>Starts the server and makes a registry leasing from a store on it, its scripts loaded.</summary>
    [GlobalSetup(Target = nameof(Registry))]
    public void SetupRegistry()
    {
        Connect();
        _store = CreateStore();
        _registry = new ActiveRunRegistry(new RunSupervisorOptions(), TimeProvider.System, loggerFactory: null, leaseStore: _store);

        // The first release may fall back from EVALSHA to EVAL after the next acquire was sent: wait for it once, here.
        Registry().GetAwaiter().GetResult();
        long deadline = Environment.TickCount64 + 10_000;
        while (_store.GetOwnerAsync(SessionId).AsTask().GetAwaiter().GetResult() is not null)
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new InvalidOperationException("The warm-up run's lease was never released.");
            }

            Thread.Sleep(10);
        }
    }

    /// <summary>Stops whatever was started.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _registry?.Dispose();
        _store?.Dispose();
        _connection?.Dispose();
        _server?.Dispose();
    }

    /// <summary>Floor: <c>SET key val NX PX ttl</c> awaited, then <c>DEL key</c> awaited: two round trips.</summary>
    /// <returns>The floor's completion.</returns>
    [Benchmark(Baseline = true, Description = "Floor: SET NX PX + DEL")]
    public async Task Floor()
    {
        RedisResult set = await _database.ExecuteAsync("SET", _setArguments).ConfigureAwait(false);
        if (set.IsNull)
        {
            throw new InvalidOperationException("SET NX found the floor's key held.");
        }

        await _database.KeyDeleteAsync(_floorKey).ConfigureAwait(false);
    }

    /// <summary>The floor with its <c>DEL</c> sent and not awaited (fire and forget), as the registry sends its release.</summary>
    /// <returns>The floor's completion.</returns>
    [Benchmark(Description = "Floor, DEL not awaited")]
    public async Task FloorDeleteNotAwaited()
    {
        RedisResult set = await _database.ExecuteAsync("SET", _setArguments).ConfigureAwait(false);
        if (set.IsNull)
        {
            throw new InvalidOperationException("SET NX found the floor's key held.");
        }

        _database.KeyDelete(_floorKey, CommandFlags.FireAndForget);
    }

    /// <summary><see cref="RedisRunLeaseStore"/> alone: acquire + release, both awaited.</summary>
    /// <returns>The release's completion.</returns>
    [Benchmark(Description = "Store alone: AcquireAsync + ReleaseAsync")]
    public async Task StoreAlone()
    {
        RunLeaseAcquireResult acquired = await _store!.AcquireAsync(_request).ConfigureAwait(false);
        if (!await _store.ReleaseAsync(acquired.Lease ?? throw new InvalidOperationException("The session's lease is held.")).ConfigureAwait(false))
        {
            throw new InvalidOperationException("The lease was gone before its release.");
        }
    }

    /// <summary><see cref="ActiveRunRegistry.StartAsync"/> (acquire awaited) + <see cref="RunHandle.Dispose"/> (release sent).</summary>
    /// <returns>The start's completion.</returns>
    [Benchmark(Description = "RunSupervisor: StartAsync + Dispose")]
    public async Task Registry()
    {
        RunHandle run = await _registry!.StartAsync(SessionId).ConfigureAwait(false);
        run.Dispose();
    }

    private void Connect()
    {
        _server = LeaseServers.Start(Server);
        _connection = LeaseServers.Connect(_server);
        _database = _connection.GetDatabase();
    }

    private RedisRunLeaseStore CreateStore()
    {
        string prefix = "bench" + Guid.NewGuid().ToString("N")[..8];
        return new RedisRunLeaseStore(_connection!, new RedisRunLeaseStoreOptions { KeyPrefix = prefix, ChannelPrefix = prefix });
    }
}
