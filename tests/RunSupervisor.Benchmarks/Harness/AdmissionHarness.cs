using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>admit</c>: admission of a long queue, one waiter at a time, and its order. A run holds the only slot; N starts
/// queue behind it with <c>StartAsync</c> (<c>WhenBusy = Wait</c>); then each admitted run is released at once, which
/// admits the next. Reports the time per queued start and per admission (release + admission of the next waiter +
/// completion of its task) at each N, so O(1) admission shows as the same figure at 1,000 and 10,000 waiters, and
/// checks that the waiters were admitted in the order they queued.
/// </summary>
/// <remarks>
/// Two shapes: <c>lane</c>, N different sessions in a lane capped at 1 (they wait because the lane is full), and
/// <c>session</c>, N starts on one busy session (its per-session queue, <c>MaxQueuedPerSession</c> raised to N). The
/// waiters' tasks complete with their continuations run asynchronously, and nothing awaits them: the loop reads each
/// one's result as soon as the release that admitted it returns, so the figure is the registry's work alone. Each size
/// is measured in <c>--rounds</c> fresh registries after 3 s of warm-up rounds; the first round is discarded too, the
/// median of the others is reported.
/// </remarks>
public static class AdmissionHarness
{
    /// <summary>The CSV header of the rows this mode writes.</summary>
    public const string CsvHeader = "shape,waiters,rounds,enqueue_ns_per_waiter,admission_ns,start_release_ns";

    private const string Lane = "bench";

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--waiters 1000,10000</c>, <c>--rounds 7</c>, <c>--shape both|lane|session</c>, <c>--out FILE.csv</c>.</param>
    /// <returns>0 if every waiter was admitted, in order; 1 otherwise.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int[] sizes = args.GetInts("waiters", [1_000, 10_000]);
        int rounds = Math.Max(2, args.GetInt("rounds", 7));
        string shape = args.GetString("shape", "both")!;
        string? outPath = args.GetString("out");
        args.ThrowIfUnknown();
        if (shape is not ("both" or "lane" or "session"))
        {
            throw new ArgumentException("--shape is both, lane or session.");
        }

        Console.WriteLine($"# admit: waiters {string.Join(", ", sizes.Select(static s => s.ToString("N0", CultureInfo.InvariantCulture)))}; {rounds} rounds each (the first a warm-up); " +
            $"{Environment.ProcessorCount} cores; .NET {Environment.Version}");

        // Warm-up, every shape in turn: long enough for tiered compilation (with its instrumented tier) to promote the
        // whole path before anything is measured; a shorter one left the first shape measured at several times its cost.
        string[] shapes = shape == "both" ? ["lane", "session"] : [shape];
        long warmUntil = Environment.TickCount64 + 3_000;
        while (Environment.TickCount64 < warmUntil)
        {
            foreach (string one in shapes)
            {
                Round(one, Math.Min(1_000, sizes.Min()));
            }
        }

        bool ok = true;
        var rows = new List<string>();
        foreach (string one in shapes)
        {
            Console.WriteLine();
            Console.WriteLine(one == "lane"
                ? "## lane: N sessions, lane capped at 1, every start waits for the lane"
                : "## session: N starts on one busy session (WhenBusy = Wait)");
            Console.WriteLine();
            Console.WriteLine("| waiters | queue a start (ns/waiter) | admission (ns) | start + release, no waiters (ns) | admitted in order |");
            Console.WriteLine("|---:|---:|---:|---:|---|");
            double? first = null;
            double last = 0;
            foreach (int waiters in sizes)
            {
                var enqueue = new List<double>();
                var admission = new List<double>();
                var plain = new List<double>();
                bool inOrder = true;
                for (int round = 0; round < rounds; round++)
                {
                    (double enqueueNs, double admissionNs, double plainNs, bool ordered) = Round(one, waiters);
                    inOrder &= ordered;
                    if (round > 0)
                    {
                        enqueue.Add(enqueueNs);
                        admission.Add(admissionNs);
                        plain.Add(plainNs);
                    }
                }

                double enqueueMedian = Percentiles.Of([.. enqueue], 50);
                double admissionMedian = Percentiles.Of([.. admission], 50);
                double plainMedian = Percentiles.Of([.. plain], 50);
                first ??= admissionMedian;
                last = admissionMedian;
                ok &= inOrder;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {waiters:N0} | {enqueueMedian:F0} | {admissionMedian:F0} | {plainMedian:F0} | {(inOrder ? "yes" : "**NO**")} |"));
                rows.Add(string.Create(CultureInfo.InvariantCulture, $"{one},{waiters},{rounds - 1},{enqueueMedian:F1},{admissionMedian:F1},{plainMedian:F1}"));
            }

            if (sizes.Length > 1)
            {
                Console.WriteLine();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"admission at {sizes[^1]:N0} waiters / at {sizes[0]:N0}: {last / first!.Value:F2} (O(1) per admission: about 1; O(n) would be {(double)sizes[^1] / sizes[0]:F0})"));
            }
        }

        Console.WriteLine();
        CsvOutput.Write(CsvHeader, rows, outPath);

        Console.WriteLine(ok ? "PASS: every waiter was admitted, in the order it queued." : "FAIL: a waiter was admitted out of order or not at all.");
        return ok ? 0 : 1;
    }

    private static (double EnqueueNs, double AdmissionNs, double PlainNs, bool Ordered) Round(string shape, int waiters)
    {
        bool lane = shape == "lane";
        var options = new RunSupervisorOptions { MaxQueuedPerSession = Math.Max(20, waiters) };
        if (lane)
        {
            options.Lanes[Lane] = 1;
        }

        using var registry = new ActiveRunRegistry(options, TimeProvider.System);
        const string HolderId = "admit-holder";
        string[] ids = lane ? BenchSessionIds.Create("admit", waiters) : [.. Enumerable.Repeat(HolderId, waiters)];
        var start = new RunStartOptions { Lane = lane ? Lane : null, WhenBusy = SessionBusyBehavior.Wait };
        var queued = new ValueTask<RunHandle>[waiters];
        var admitted = new RunHandle[waiters];

        RunHandle current = registry.StartAsync(HolderId, start).GetAwaiter().GetResult();
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < waiters; i++)
        {
            queued[i] = registry.StartAsync(ids[i], start);
        }

        long t1 = Stopwatch.GetTimestamp();
        bool ordered = !queued.Any(static q => q.IsCompleted);
        for (int i = 0; i < waiters; i++)
        {
            current.Dispose();
            ValueTask<RunHandle> next = queued[i];
            if (!next.IsCompletedSuccessfully)
            {
                // Not admitted by the release that freed its turn: out of order (or failed).
                ordered = false;
                next.AsTask().Wait(TimeSpan.FromSeconds(10));
            }

            if (i + 1 < waiters && queued[i + 1].IsCompleted)
            {
                // One release admits one waiter: the next must still wait.
                ordered = false;
            }

            current = next.Result;
            admitted[i] = current;
        }

        long t2 = Stopwatch.GetTimestamp();
        current.Dispose();

        // Order: the i-th admission is the i-th waiter's start (lane) and run ids grow with admission order.
        for (int i = 0; i < waiters && ordered; i++)
        {
            ordered = admitted[i].SessionId == ids[i] && (i == 0 || admitted[i].RunId > admitted[i - 1].RunId);
        }

        // The same number of starts + releases on an idle session of the same registry: the cost without any queue.
        long t3 = Stopwatch.GetTimestamp();
        for (int i = 0; i < waiters; i++)
        {
            registry.StartAsync(HolderId, start).GetAwaiter().GetResult().Dispose();
        }

        long t4 = Stopwatch.GetTimestamp();
        double ns = 1e9 / Stopwatch.Frequency / waiters;
        return ((t1 - t0) * ns, (t2 - t1) * ns, (t4 - t3) * ns, ordered);
    }
}
