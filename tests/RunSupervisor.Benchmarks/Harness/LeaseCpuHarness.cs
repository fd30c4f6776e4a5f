using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Benchmarks.Implementations;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>lease-cpu</c>: the store's CPU cost per leased run. Runs many start + release cycles one after another against a
/// server on loopback and divides the CPU time spent over the number of runs: for <c>redis-server</c> the server
/// process's own (user + system time of every thread, from <c>/proc/&lt;pid&gt;/stat</c>), and this process's; for
/// Garnet, which runs inside this process, only this process's, which then holds client and server together.
/// </summary>
/// <remarks>
/// Three implementations, on the same server and connection, one after the other: the floor (<c>SET NX PX</c> + <c>DEL</c>,
/// both awaited), the store alone (<c>AcquireAsync</c> + <c>ReleaseAsync</c>, awaited) and the registry
/// (<c>StartAsync</c> + <c>Dispose</c>, whose release is sent, not awaited: a <c>PING</c> after the last run makes sure
/// every release was handled before the CPU time is read). <c>/proc</c> counts in clock ticks of 10 ms, so the default
/// 20,000 runs keep that rounding under a few percent of the server's time. The runs are split into rounds in which
/// every implementation takes its turn, so a machine whose load drifts (a busy neighbour) skews them alike; the median
/// of the rounds' wall-time ratios to the floor is printed besides the totals.
/// </remarks>
public static class LeaseCpuHarness
{
    /// <summary>The CSV header of the rows this mode writes.</summary>
    public const string CsvHeader = "server,impl,runs,wall_us_per_run,server_cpu_us_per_run,process_cpu_us_per_run";

    private const string SessionId = "bench-session-cpu";

    private static readonly TimeSpan Ttl = new RunLeaseOptions().LeaseTtl;

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--server redis-server|garnet</c> (default: redis-server when on PATH), <c>--runs 20000</c>, <c>--rounds 5</c>, <c>--impl all|floor|store|runsupervisor</c>, <c>--out FILE.csv</c>.</param>
    /// <returns>0.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string serverName = args.GetString("server", LeaseServers.RedisServerPath is null ? LeaseServers.Garnet : LeaseServers.RedisServer)!;
        int runs = args.GetInt("runs", 20_000);
        int rounds = args.GetInt("rounds", 5);
        string impl = args.GetString("impl", "all")!;
        string? outPath = args.GetString("out");
        args.ThrowIfUnknown();
        if (impl is not ("all" or "floor" or "store" or "runsupervisor"))
        {
            throw new ArgumentException("--impl is all, floor, store or runsupervisor.");
        }

        if (rounds < 1 || runs % rounds != 0)
        {
            throw new ArgumentException("--rounds must be at least 1 and divide --runs.");
        }

        using ILeaseServer server = LeaseServers.Start(serverName);
        using ConnectionMultiplexer connection = LeaseServers.Connect(server);
        string prefix = "cpu" + Guid.NewGuid().ToString("N")[..8];
        using var store = new RedisRunLeaseStore(connection, new RedisRunLeaseStoreOptions { KeyPrefix = prefix, ChannelPrefix = prefix });
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), TimeProvider.System, loggerFactory: null, leaseStore: store);
        IDatabase database = connection.GetDatabase();

        // Loads the acquire and release scripts: a registry's first release, not awaited, could otherwise fall back from
        // EVALSHA to EVAL after its next start's acquire was sent, and find the session still held.
        RunLeaseAcquireResult preload = store.AcquireAsync(new RunLeaseRequest(SessionId + "-preload", "cpu-host", Ttl)).AsTask().GetAwaiter().GetResult();
        store.ReleaseAsync(preload.Lease!).AsTask().GetAwaiter().GetResult();

        Console.WriteLine($"# lease-cpu: {runs:N0} start + release per implementation in {rounds} rounds, one at a time, against {server.Name} on 127.0.0.1:{server.Port}" +
            (server.ProcessId is int pid ? $" (pid {pid})" : " (in this process)") + $"; {Environment.ProcessorCount} cores; .NET {Environment.Version}");
        if (server.ProcessId is null)
        {
            Console.WriteLine("Garnet runs inside this process: there is no separate server CPU time, and 'process CPU' holds client and server together.");
        }

        var implementations = new List<(string Name, Func<Task> Run)>();
        if (impl is "all" or "floor")
        {
            RedisKey key = prefix + ":floor";
            object[] setArguments = [key.ToString(), "cpu-host", "NX", "PX", (long)Ttl.TotalMilliseconds];
            implementations.Add(("Floor: SET NX PX + DEL", async () =>
            {
                if ((await database.ExecuteAsync("SET", setArguments).ConfigureAwait(false)).IsNull)
                {
                    throw new InvalidOperationException("SET NX found the floor's key held.");
                }

                await database.KeyDeleteAsync(key).ConfigureAwait(false);
            }));
        }

        if (impl is "all" or "store")
        {
            var request = new RunLeaseRequest(SessionId + "-store", "cpu-host", Ttl);
            implementations.Add(("Store alone: AcquireAsync + ReleaseAsync", async () =>
            {
                RunLeaseAcquireResult acquired = await store.AcquireAsync(request).ConfigureAwait(false);
                await store.ReleaseAsync(acquired.Lease ?? throw new InvalidOperationException("The session's lease is held.")).ConfigureAwait(false);
            }));
        }

        if (impl is "all" or "runsupervisor")
        {
            implementations.Add(("RunSupervisor: StartAsync + Dispose", async () =>
            {
                RunHandle run = await registry.StartAsync(SessionId).ConfigureAwait(false);
                run.Dispose();
            }));
        }

        Console.WriteLine();
        Console.WriteLine("| implementation | runs | wall µs/run | server CPU µs/run | this process CPU µs/run |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach ((_, Func<Task> run) in implementations)
        {
            // Loads the scripts and JITs the path; the PING waits until a release sent and not awaited has been handled.
            RunMany(run, Math.Min(2_000, runs), database);
        }

        var totals = new (double WallUs, double ServerUs, double ProcessUs)[implementations.Count];
        var ratios = new List<double>[implementations.Count];
        for (int round = 0; round < rounds; round++)
        {
            var wall = new double[implementations.Count];
            for (int i = 0; i < implementations.Count; i++)
            {
                (double wallUs, double serverUs, double processUs) = Measure(implementations[i].Run, runs / rounds, database, server.ProcessId);
                wall[i] = wallUs;
                totals[i] = (totals[i].WallUs + (wallUs / rounds), totals[i].ServerUs + (serverUs / rounds), totals[i].ProcessUs + (processUs / rounds));
            }

            for (int i = 0; i < implementations.Count; i++)
            {
                (ratios[i] ??= []).Add(wall[i] / wall[0]);
            }
        }

        var rows = new List<string>();
        for (int i = 0; i < implementations.Count; i++)
        {
            string name = implementations[i].Name;
            (double wallUs, double serverUs, double processUs) = totals[i];
            string serverCell = double.IsNaN(serverUs) ? "n/a (in this process)" : serverUs.ToString("F2", CultureInfo.InvariantCulture);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {runs:N0} | {wallUs:F2} | {serverCell} | {processUs:F2} |"));
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"{server.Name},{name},{runs},{wallUs:F3},{(double.IsNaN(serverUs) ? string.Empty : serverUs.ToString("F3", CultureInfo.InvariantCulture))},{processUs:F3}"));
        }

        if (implementations.Count > 1)
        {
            Console.WriteLine();
            Console.WriteLine($"Wall time over the first row's ({implementations[0].Name}), the median of the rounds, then each round:");
            for (int i = 1; i < implementations.Count; i++)
            {
                List<double> sorted = [.. ratios[i].Order()];
                string each = string.Join(", ", ratios[i].Select(static r => r.ToString("F2", CultureInfo.InvariantCulture)));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"- {implementations[i].Name}: {sorted[sorted.Count / 2]:F2} × ({each})"));
            }
        }

        if (outPath is not null)
        {
            File.WriteAllLines(outPath, [CsvHeader, .. rows]);
            Console.WriteLine($"wrote {outPath}");
        }

        return 0;
    }

    private static (double WallUs, double ServerUs, double ProcessUs) Measure(Func<Task> run, int runs, IDatabase database, int? serverPid)
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        TimeSpan processBefore = process.TotalProcessorTime;
        TimeSpan serverBefore = serverPid is int pid ? LeaseServers.ProcessCpu(pid) : TimeSpan.Zero;
        long started = Stopwatch.GetTimestamp();
        RunMany(run, runs, database);
        double wallUs = Stopwatch.GetElapsedTime(started).TotalMicroseconds / runs;
        TimeSpan serverAfter = serverPid is int pid2 ? LeaseServers.ProcessCpu(pid2) : TimeSpan.Zero;
        process.Refresh();
        TimeSpan processAfter = process.TotalProcessorTime;
        double serverUs = serverPid is null ? double.NaN : (serverAfter - serverBefore).TotalMicroseconds / runs;
        return (wallUs, serverUs, (processAfter - processBefore).TotalMicroseconds / runs);
    }

    private static void RunMany(Func<Task> run, int runs, IDatabase database)
    {
        for (int i = 0; i < runs; i++)
        {
            run().GetAwaiter().GetResult();
        }

        database.Ping();
    }
}
