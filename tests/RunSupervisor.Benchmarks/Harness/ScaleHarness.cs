using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>scale</c>: fills one registry to 1,000 → 10,000 → 100,000 → 1,000,000 concurrent active runs and, at each
/// size, measures the bytes retained per run (GC heap after a full collection, minus the heap before the first run)
/// and the latency of starting one more run (each probe starts a run on a fresh session, timed alone, then releases it).
/// </summary>
/// <remarks>
/// Session id strings and the array holding the handles are made before the baseline: a host owns its session ids
/// whatever supervises them, so the figure is what supervision adds per run. Timeouts are one hour, so nothing fires.
/// </remarks>
public static class ScaleHarness
{
    /// <summary>The CSV header of the rows this mode writes (and <c>chart</c> reads).</summary>
    public const string CsvHeader = "impl,active_runs,bytes_per_run,fill_ns_per_start,start_p50_ns,start_p99_ns,start_mean_ns,heap_mb";

    private static readonly TimeSpan LongTimeout = TimeSpan.FromHours(1);

    // Stopwatch ticks, not TimeSpan: a TimeSpan would round every probe to 100 ns.
    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--sizes 1000,10000,100000,1000000</c>, <c>--probes 20000</c>, <c>--impl runsupervisor|floor|both</c>, <c>--out scale.csv</c>.</param>
    /// <returns>The exit code.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int[] sizes = args.GetInts("sizes", [1_000, 10_000, 100_000, 1_000_000]);
        int probes = args.GetInt("probes", 20_000);
        string impl = args.GetString("impl", "both")!;
        string? outPath = args.GetString("out");
        args.ThrowIfUnknown();
        Array.Sort(sizes);

        Console.WriteLine($"# scale: sizes {string.Join(", ", sizes)}; {probes} probes per size; {Environment.ProcessorCount} cores; " +
            $"{(GCSettings.IsServerGC ? "server" : "workstation")} GC, {GCSettings.LatencyMode}; .NET {Environment.Version}");
        List<string> rows = [];
        if (impl is "both" or "runsupervisor")
        {
            rows.AddRange(Measure("RunSupervisor", sizes, probes, RegistryTarget.Create));
        }

        if (impl is "both" or "floor")
        {
            rows.AddRange(Measure("Floor", sizes, probes, FloorTarget.Create));
        }

        Console.WriteLine();
        CsvOutput.Write(CsvHeader, rows, outPath);

        return 0;
    }

    private static List<string> Measure(string name, int[] sizes, int probes, Func<int, ITarget> create)
    {
        int max = sizes[^1];
        string[] ids = BenchSessionIds.Create("scale", max);
        string[] probeIds = BenchSessionIds.Create("probe", probes);
        double[] latencies = new double[probes];

        // JIT and tiering: the measured code paths run hot before anything is timed.
        using (ITarget warm = create(max))
        {
            string[] warmIds = BenchSessionIds.Create("jit", 20_000);
            for (int round = 0; round < 3; round++)
            {
                for (int i = 0; i < warmIds.Length; i++)
                {
                    warm.Start(i, warmIds[i]);
                }

                for (int i = 0; i < warmIds.Length; i++)
                {
                    warm.Release(i, warmIds[i]);
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine($"## {name}");
        Console.WriteLine();
        Console.WriteLine("| active runs | bytes/run (retained) | fill ns/start | start p50 ns | start p99 ns | start mean ns | GC heap MB |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        List<string> rows = [];
        using ITarget target = create(max);
        long baseline = Heap.LiveBytesAfterFullCollection();
        int started = 0;
        foreach (int size in sizes)
        {
            long fillStart = Stopwatch.GetTimestamp();
            int from = started;
            for (; started < size; started++)
            {
                target.Start(started, ids[started]);
            }

            double fillNs = (Stopwatch.GetTimestamp() - fillStart) * NanosecondsPerTick / Math.Max(1, size - from);
            long live = Heap.LiveBytesAfterFullCollection();
            double bytesPerRun = (double)(live - baseline) / size;

            for (int k = 0; k < probes; k++)
            {
                long t0 = Stopwatch.GetTimestamp();
                target.StartProbe(probeIds[k]);
                long t1 = Stopwatch.GetTimestamp();
                target.ReleaseProbe(probeIds[k]);
                latencies[k] = (t1 - t0) * NanosecondsPerTick;
            }

            double mean = latencies.Average();
            double p50 = Percentiles.Of(latencies, 50);
            double p99 = Percentiles.Of(latencies, 99);
            double heapMb = live / 1024.0 / 1024.0;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {size:N0} | {bytesPerRun:F0} | {fillNs:F0} | {p50:F0} | {p99:F0} | {mean:F0} | {heapMb:F1} |"));
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"{name},{size},{bytesPerRun:F1},{fillNs:F1},{p50:F1},{p99:F1},{mean:F1},{heapMb:F1}"));
        }

        GC.KeepAlive(ids);
        return rows;
    }

    /// <summary>One implementation, driven by index (handles live in an array made before the baseline).</summary>
    private interface ITarget : IDisposable
    {
        void Start(int index, string sessionId);

        void Release(int index, string sessionId);

        void StartProbe(string sessionId);

        void ReleaseProbe(string sessionId);
    }

    private sealed class RegistryTarget : ITarget
    {
        private readonly ActiveRunRegistry _registry = new(new RunSupervisorOptions { RunTimeout = LongTimeout, MaxRunDuration = LongTimeout }, TimeProvider.System);
        private readonly RunHandle?[] _handles;
        private RunHandle? _probe;

        private RegistryTarget(int capacity) => _handles = new RunHandle?[capacity];

        public static ITarget Create(int capacity) => new RegistryTarget(capacity);

        public void Start(int index, string sessionId) => _handles[index] = _registry.Start(sessionId);

        public void Release(int index, string sessionId)
        {
            _handles[index]!.Dispose();
            _handles[index] = null;
        }

        public void StartProbe(string sessionId) => _probe = _registry.Start(sessionId);

        public void ReleaseProbe(string sessionId) => _probe!.Dispose();

        public void Dispose() => _registry.Dispose();
    }

    private sealed class FloorTarget : ITarget
    {
        private readonly FloorSupervisor _floor = new(LongTimeout, new RunSupervisorOptions().GracePeriod);

        public static ITarget Create(int capacity) => new FloorTarget();

        public void Start(int index, string sessionId) => _floor.Start(sessionId);

        public void Release(int index, string sessionId) => _floor.Release(sessionId);

        public void StartProbe(string sessionId) => _floor.Start(sessionId);

        public void ReleaseProbe(string sessionId) => _floor.Release(sessionId);

        public void Dispose() => _floor.Dispose();
    }
}
