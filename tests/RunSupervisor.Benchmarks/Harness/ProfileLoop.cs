using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// The <c>profile</c> mode: case (a), start + release on an idle session, in a tight loop, for a sampling profiler
/// (<c>perf record</c>) to attribute the time; and, unless <c>--impl runsupervisor</c>, the floor in alternating
/// rounds, so that both see the same machine. On a shared virtual machine the speed drifts over minutes, which
/// BenchmarkDotNet (one implementation after the other) cannot cancel out; alternating rounds can. With
/// <c>--op runasync</c>, case (b) instead: <c>RunAsync</c> of a completed provider awaited in a loop on a thread-pool
/// thread, as a host's request handler awaits it, against the dictionary + Polly timeout peer run through
/// <c>Task.Run</c> (the peer with the same guarantee for a provider that blocks its thread), and, in the same
/// alternation, three floors of that guarantee: the hop alone (<c>Task.Run</c> of the provider, unsupervised), and a
/// start + release of the registry, or of the bare-BCL floor, inside that hop (the least a supervised hop costs).
/// </summary>
public static class ProfileLoop
{
    private const string SessionId = "bench-session-a";

    private static readonly Task<int> CompletedResult = Task.FromResult(1);
    private static readonly Func<CancellationToken, Task<int>> Provider = static _ => CompletedResult;

    /// <summary>Runs the mode.</summary>
    /// <param name="args"><c>--op start-release|runasync</c>, <c>--ops</c> per round (2,000,000; 200,000 for <c>runasync</c>), <c>--rounds</c> (15), <c>--active-runs</c> (1,000), <c>--impl both|runsupervisor</c>.</param>
    /// <returns>0.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        bool runAsync = args.GetString("op", "start-release") switch
        {
            "start-release" => false,
            "runasync" => true,
            var other => throw new ArgumentException($"--op must be start-release or runasync (was '{other}')."),
        };
        int ops = args.GetInt("ops", runAsync ? 200_000 : 2_000_000);
        int rounds = args.GetInt("rounds", 15);
        int activeRuns = args.GetInt("active-runs", 1_000);
        bool withBaseline = args.GetString("impl", "both") switch
        {
            "both" => true,
            "runsupervisor" => false,
            var other => throw new ArgumentException($"--impl must be both or runsupervisor (was '{other}')."),
        };
        args.ThrowIfUnknown();

        using ActiveRunRegistry registry = WarmRegistries.Registry(activeRuns);
        using FloorSupervisor floor = WarmRegistries.Floor(withBaseline && !runAsync ? activeRuns : 0);
        using PollyPeer peer = WarmRegistries.Peer(withBaseline && runAsync ? activeRuns : 0);
        Func<int, double> registryRound = runAsync
            ? n => TimeOnPool(n, () => registry.RunAsync(SessionId, Provider))
            : n => Time(n, () => registry.Start(SessionId).Dispose());
        Func<int, double> baselineRound = runAsync
            ? n => TimeOnPool(n, () => peer.RunOnPoolAsync(SessionId, Provider))
            : n => Time(n, () => floor.StartAndRelease(SessionId));
        string baselineName = runAsync ? "Peer (Polly + Task.Run)" : "Floor";
        List<double> registryNs = [];
        List<double> baselineNs = [];
        using FloorSupervisor hopFloor = WarmRegistries.Floor(withBaseline && runAsync ? activeRuns : 0);
        (string Name, Func<int, double> Round, List<double> Ns)[] floors = withBaseline && runAsync
            ?
            [
                ("Hop alone (Task.Run of the provider, unsupervised)", n => TimeOnPool(n, static () => Task.Run(static () => Provider(CancellationToken.None))), []),
                ("Start + release inside that hop", n => TimeOnPool(n, () => Task.Run(() => StartAndReleaseAround(registry))), []),
                ("Floor's start + release inside that hop", n => TimeOnPool(n, () => Task.Run(() => FloorAround(hopFloor))), []),
            ]
            : [];
        for (int round = 0; round < rounds; round++)
        {
            registryNs.Add(registryRound(ops));
            if (withBaseline)
            {
                baselineNs.Add(baselineRound(ops));
            }

            foreach ((_, Func<int, double> floorRound, List<double> ns) in floors)
            {
                ns.Add(floorRound(ops));
            }
        }

        // The first round includes tiering up; the median of the rest is the figure.
        double registryMedian = Median(registryNs.Skip(1));
        string what = runAsync ? "RunAsync of a completed provider, awaited on a pool thread" : "start + release";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{activeRuns:N0} active runs, {rounds} rounds of {ops:N0} {what}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RunSupervisor: median {registryMedian:F1} ns/op"));
        if (withBaseline)
        {
            double baselineMedian = Median(baselineNs.Skip(1));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{baselineName}: median {baselineMedian:F1} ns/op"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio (medians): {registryMedian / baselineMedian:F2}"));
            foreach ((string name, _, List<double> ns) in floors)
            {
                double median = Median(ns.Skip(1));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: median {median:F1} ns/op, {median / baselineMedian:F2} of the peer's"));
            }
        }

        return 0;
    }

    /// <summary>Nanoseconds per call of <paramref name="op"/>, called <paramref name="ops"/> times on this thread.</summary>
    private static double Time(int ops, Action op)
    {
        long started = Stopwatch.GetTimestamp();
        for (int i = 0; i < ops; i++)
        {
            op();
        }

        return Stopwatch.GetElapsedTime(started).TotalNanoseconds / ops;
    }

    /// <summary>Nanoseconds per call of <paramref name="op"/>, awaited <paramref name="ops"/> times in turn by one loop on the thread pool.</summary>
    private static double TimeOnPool(int ops, Func<Task<int>> op)
    {
        long started = Stopwatch.GetTimestamp();
        Task.Run(async () =>
        {
            for (int i = 0; i < ops; i++)
            {
                await op().ConfigureAwait(false);
            }
        }).GetAwaiter().GetResult();
        return Stopwatch.GetElapsedTime(started).TotalNanoseconds / ops;
    }

    private static Task<int> StartAndReleaseAround(ActiveRunRegistry registry)
    {
        using RunHandle run = registry.Start(SessionId);
        return Provider(run.AbortToken);
    }

    private static Task<int> FloorAround(FloorSupervisor floor)
    {
        floor.StartAndRelease(SessionId);
        return Provider(CancellationToken.None);
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
