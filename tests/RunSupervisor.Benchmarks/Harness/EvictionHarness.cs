using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>evict</c>: starts many runs on <see cref="TimeProvider.System"/> whose providers hang and ignore cancellation,
/// with short timeouts, and measures how late each force eviction is against the run's own deadline + grace
/// (p50, p99, max, how many were over 1 s) and the process CPU time spent per eviction.
/// </summary>
/// <remarks>
/// Lateness is measured on <see cref="Stopwatch"/> from a timestamp taken just before each <c>Start</c>, so it
/// over-states the true lateness by at most one start's latency. CPU time is <see cref="Process.TotalProcessorTime"/>
/// between the last start and the last eviction, over the number of evictions: it includes the deadline pass (abort),
/// the eviction, the ledger, this harness's <c>RunEnded</c> handler and any GC in that window, so it is an upper bound.
/// </remarks>
public static class EvictionHarness
{
    /// <summary>The CSV header of the row this mode writes.</summary>
    public const string CsvHeader = "api,runs,timeout_ms,grace_ms,evicted,late_over_1s,lateness_p50_ms,lateness_p99_ms,lateness_max_ms,cpu_us_per_eviction,start_phase_ms";

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--runs 100000</c>, <c>--timeout-ms 3000</c>, <c>--grace-ms 1000</c>, <c>--api handle|runasync</c>, <c>--out evict.csv</c>.</param>
    /// <returns>0 if every run was evicted within 1 s of its grace deadline; 1 otherwise.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int runs = args.GetInt("runs", 100_000);
        var timeout = TimeSpan.FromMilliseconds(args.GetInt("timeout-ms", 3_000));
        var grace = TimeSpan.FromMilliseconds(args.GetInt("grace-ms", 1_000));
        string api = args.GetString("api", "handle")!;
        string? outPath = args.GetString("out");
        args.ThrowIfUnknown();
        if (api is not ("handle" or "runasync"))
        {
            throw new ArgumentException("--api is handle (Start + Attach) or runasync (RunAsync).");
        }

        Console.WriteLine($"# evict: {runs:N0} hanging runs via {api}; timeout {timeout.TotalMilliseconds} ms, grace {grace.TotalMilliseconds} ms; " +
            $"{Environment.ProcessorCount} cores; .NET {Environment.Version}");

        // JIT the whole path (start, deadline, eviction, ledger) on a small batch first.
        Measure(Math.Min(2_000, runs), TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50), api, quiet: true);
        string row = Measure(runs, timeout, grace, api, quiet: false, out bool ok);
        Console.WriteLine();
        CsvOutput.Write(CsvHeader, [row], outPath);

        Console.WriteLine(ok ? "PASS: every run was force-evicted within 1 s of its grace deadline." : "FAIL: see the table above.");
        return ok ? 0 : 1;
    }

    private static void Measure(int runs, TimeSpan timeout, TimeSpan grace, string api, bool quiet) => Measure(runs, timeout, grace, api, quiet, out _);

    private static string Measure(int runs, TimeSpan timeout, TimeSpan grace, string api, bool quiet, out bool ok)
    {
        string[] ids = BenchSessionIds.Create("evict", runs);
        var providers = new TaskCompletionSource<int>[runs];
        for (int i = 0; i < runs; i++)
        {
            providers[i] = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        long[] startedAt = new long[runs];
        long[] evictedAt = new long[runs];
        int ended = 0;
        int forceEvicted = 0;
        var allEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handles = new RunHandle[api == "handle" ? runs : 0];
        var calls = new Task<int>[api == "runasync" ? runs : 0];

        var options = new RunSupervisorOptions { RunTimeout = timeout, GracePeriod = grace, MaxRunDuration = TimeSpan.FromHours(1) };
        using var registry = new ActiveRunRegistry(options, TimeProvider.System);

        // Run ids of a fresh registry are 1, 2, 3, ... in start order: the index is RunId - 1.
        registry.RunEnded += (_, e) =>
        {
            int index = (int)(e.RunId - 1);
            if (e.Reason == RunEndReason.ForceEvicted)
            {
                evictedAt[index] = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref forceEvicted);
            }

            if (Interlocked.Increment(ref ended) == runs)
            {
                allEnded.TrySetResult();
            }
        };

        using var process = Process.GetCurrentProcess();
        long phaseStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < runs; i++)
        {
            startedAt[i] = Stopwatch.GetTimestamp();
            if (api == "handle")
            {
                RunHandle run = registry.Start(ids[i]);
                run.Attach(providers[i].Task);
                handles[i] = run;
            }
            else
            {
                TaskCompletionSource<int> provider = providers[i];
                calls[i] = registry.RunAsync(ids[i], _ => provider.Task);
            }
        }

        process.Refresh();
        TimeSpan cpuAfterStart = process.TotalProcessorTime;
        double startPhaseMs = Stopwatch.GetElapsedTime(phaseStart).TotalMilliseconds;
        TimeSpan waitLimit = timeout + grace + TimeSpan.FromSeconds(60);
        bool finished = allEnded.Task.Wait(waitLimit);

        // RunAsync callers learn of the eviction from a continuation (Completion runs them asynchronously): wait for
        // every call to settle too, inside the CPU window, since throwing RunEvictedException is part of that API's cost.
        if (calls.Length > 0)
        {
            finished &= Task.WhenAll(calls).ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(60));
        }

        process.Refresh();
        TimeSpan cpuAfterEvictions = process.TotalProcessorTime;

        double evictAfterMs = (timeout + grace).TotalMilliseconds;
        double[] lateness = new double[runs];
        int missing = 0;
        for (int i = 0; i < runs; i++)
        {
            if (evictedAt[i] == 0)
            {
                missing++;
                lateness[i] = double.PositiveInfinity;
                continue;
            }

            lateness[i] = ((evictedAt[i] - startedAt[i]) * 1e3 / Stopwatch.Frequency) - evictAfterMs;
        }

        int lateOverOneSecond = lateness.Count(static l => l > 1_000);
        double p50 = Percentiles.Of(lateness, 50);
        double p99 = Percentiles.Of(lateness, 99);
        double max = lateness[^1];
        double cpuUs = (cpuAfterEvictions - cpuAfterStart).TotalMicroseconds / Math.Max(1, forceEvicted);
        int thrown = calls.Count(static c => c.IsFaulted && c.Exception!.InnerException is RunEvictedException);

        // Let the zombies settle so the abandoned ledger empties before the registry goes.
        foreach (TaskCompletionSource<int> provider in providers)
        {
            provider.TrySetResult(0);
        }

        ok = finished && missing == 0 && lateOverOneSecond == 0 && (api == "handle" || thrown == runs);
        if (!quiet)
        {
            Console.WriteLine();
            Console.WriteLine("| runs | evicted | late > 1 s | lateness p50 ms | p99 ms | max ms | CPU µs/eviction | start phase ms |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {runs:N0} | {forceEvicted:N0} | {lateOverOneSecond:N0} | {p50:F1} | {p99:F1} | {max:F1} | {cpuUs:F2} | {startPhaseMs:F0} |"));
            if (startPhaseMs > timeout.TotalMilliseconds)
            {
                Console.WriteLine($"note: starting took longer than the timeout; deadlines passed during the start phase, so CPU per eviction misses part of the work. Use a longer --timeout-ms.");
            }

            if (api == "runasync")
            {
                Console.WriteLine($"RunAsync calls that threw RunEvictedException: {thrown:N0} of {runs:N0}");
            }
        }

        GC.KeepAlive(handles);
        return string.Create(CultureInfo.InvariantCulture,
            $"{api},{runs},{timeout.TotalMilliseconds},{grace.TotalMilliseconds},{forceEvicted},{lateOverOneSecond},{p50:F2},{p99:F2},{max:F2},{cpuUs:F3},{startPhaseMs:F0}");
    }
}
