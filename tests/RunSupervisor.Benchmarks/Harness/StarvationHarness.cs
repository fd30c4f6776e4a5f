using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>starve</c>: the watchdog under thread-pool starvation, on <see cref="TimeProvider.System"/>. First, many runs whose
/// providers block their pool thread synchronously inside <c>RunAsync</c> (a blocking wait, invisible to the pool's
/// starvation detection) starve the pool; then other runs whose providers hang and ignore cancellation start, with a
/// short timeout and grace period. Each hung run's abort and eviction must happen on time however starved the pool is:
/// the mode reports how late each was (p50, p99, max) and fails if any was later than <c>--max-late-ms</c>.
/// </summary>
/// <remarks>
/// <para>Lateness is measured on <see cref="Stopwatch"/> from a timestamp taken just before each start, so it
/// over-states the truth by at most one start's latency. Each abort and eviction is observed twice: by what the
/// registry raises on its watchdog thread (the <c>RunTimedOut</c> warning, event 4, logged as the abort is sent; the
/// <c>RunEnded</c> event with <c>ForceEvicted</c>), and, with <c>--api handle</c>, by a thread of this harness polling
/// every handle every millisecond (<see cref="RunHandle.AbortToken"/> cancelled; <see cref="RunHandle.Status"/>
/// <c>Evicted</c>). Both count towards the verdict.</para>
/// <para>With <c>--api runasync</c> the mode also reports when each caller's <c>RunEvictedException</c> arrived. That
/// needs a pool thread, so it comes only once the pool recovers (at the latest when the blockers are let go, after the
/// last eviction): it is printed for information and not part of the verdict.</para>
/// </remarks>
public static class StarvationHarness
{
    /// <summary>The CSV header of the rows this mode writes.</summary>
    public const string CsvHeader = "api,blockers,runs,timeout_ms,grace_ms,aborted,evicted,abort_p50_ms,abort_p99_ms,abort_max_ms,evict_p50_ms,evict_p99_ms,evict_max_ms,polled_abort_max_ms,polled_evict_max_ms,watchdog_lateness_ms,watchdog_lateness_max_ms,pool_threads,pool_pending,blockers_running";

    // Event ids of the core's log messages (src/RunSupervisor/Internal/Log.cs).
    private const int RunTimedOutEventId = 4;
    private const int WatchdogLateEventId = 16;

    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--blockers 64</c>, <c>--runs 100</c>, <c>--timeout-ms 300</c>, <c>--grace-ms 300</c>, <c>--max-late-ms 250</c>, <c>--api both|handle|runasync</c>, <c>--out FILE.csv</c>.</param>
    /// <returns>0 if every abort and eviction was within <c>--max-late-ms</c> of its due instant; 1 otherwise.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int blockers = args.GetInt("blockers", 64);
        int runs = args.GetInt("runs", 100);
        var timeout = TimeSpan.FromMilliseconds(args.GetInt("timeout-ms", 300));
        var grace = TimeSpan.FromMilliseconds(args.GetInt("grace-ms", 300));
        double maxLateMs = args.GetInt("max-late-ms", 250);
        string api = args.GetString("api", "both")!;
        string? outPath = args.GetString("out");
        args.ThrowIfUnknown();
        if (api is not ("both" or "handle" or "runasync"))
        {
            throw new ArgumentException("--api is both, handle (Start + Attach) or runasync (RunAsync).");
        }

        ThreadPool.GetMinThreads(out int minWorkers, out _);
        Console.WriteLine($"# starve: {blockers} providers blocking pool threads inside RunAsync, then {runs} hung runs (ignoring cancellation); " +
            $"timeout {timeout.TotalMilliseconds} ms, grace {grace.TotalMilliseconds} ms; late if > {maxLateMs} ms; " +
            $"{Environment.ProcessorCount} cores, pool minimum {minWorkers} worker threads; .NET {Environment.Version}");

        // JIT the whole path (start, watchdog, abort, eviction, logging, polling) without starvation first.
        Measure("handle", blockers: 0, Math.Min(runs, 20), TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50), maxLateMs, quiet: true, out _);
        Measure("runasync", blockers: 0, Math.Min(runs, 20), TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50), maxLateMs, quiet: true, out _);

        bool ok = true;
        var rows = new List<string>();
        foreach (string one in api == "both" ? ["handle", "runasync"] : new[] { api })
        {
            rows.Add(Measure(one, blockers, runs, timeout, grace, maxLateMs, quiet: false, out bool passed));
            ok &= passed;
        }

        Console.WriteLine();
        CsvOutput.Write(CsvHeader, rows, outPath);

        Console.WriteLine(ok
            ? $"PASS: every hung run was aborted and force-evicted within {maxLateMs} ms of its instant while the pool was starved."
            : "FAIL: see the tables above.");
        return ok ? 0 : 1;
    }

    private static string Measure(string api, int blockers, int runs, TimeSpan timeout, TimeSpan grace, double maxLateMs, bool quiet, out bool ok)
    {
        string[] blockerIds = BenchSessionIds.Create("starve-blocker", blockers);
        string[] ids = BenchSessionIds.Create("starve-hung", runs);
        var indexOf = new Dictionary<string, int>(runs, StringComparer.Ordinal);
        for (int i = 0; i < ids.Length; i++)
        {
            indexOf.Add(ids[i], i);
        }

        long[] startedAt = new long[runs];
        long[] abortLogged = new long[runs];
        long[] evictRaised = new long[runs];
        long[] abortPolled = new long[runs];
        long[] evictPolled = new long[runs];
        long[] callerSaw = new long[runs];
        var hung = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var evictions = new CountdownEvent(runs);
        using var release = new ManualResetEventSlim(false);
        var handles = new RunHandle?[api == "handle" ? runs : 0];
        var calls = new Task<int>[api == "runasync" ? runs : 0];
        int blockersRunning = 0;

        // The registry's own record of its lateness: every abort and eviction records the histogram; late ticks warn.
        double latenessMaxMs = 0;
        using var meterListener = new MeterListener
        {
            InstrumentPublished = static (instrument, listener) =>
            {
                if (instrument.Meter.Name == "RunSupervisor" && instrument.Name == "runsupervisor.watchdog.lateness")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        meterListener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
        {
            lock (indexOf)
            {
                latenessMaxMs = Math.Max(latenessMaxMs, seconds * 1e3);
            }
        });
        meterListener.Start();
        var logs = new CapturingLoggerFactory((eventId, state) =>
        {
            if (eventId == RunTimedOutEventId && Field(state, "SessionId") is string sessionId && indexOf.TryGetValue(sessionId, out int index))
            {
                Interlocked.CompareExchange(ref abortLogged[index], Stopwatch.GetTimestamp(), 0);
            }
        });

        var options = new RunSupervisorOptions { RunTimeout = timeout, GracePeriod = grace, MaxRunDuration = TimeSpan.FromHours(1) };
        using var registry = new ActiveRunRegistry(options, TimeProvider.System, logs);
        registry.RunEnded += (_, e) =>
        {
            if (e.Reason == RunEndReason.ForceEvicted && indexOf.TryGetValue(e.SessionId, out int index))
            {
                evictRaised[index] = Stopwatch.GetTimestamp();
                evictions.Signal();
            }
        };

        // The blockers: each provider blocks its pool thread until the end of the measurement. Their own timeout is long.
        var blocking = new Task<int>[blockers];
        var blockerOptions = new RunStartOptions { Timeout = TimeSpan.FromMinutes(30) };
        for (int i = 0; i < blockers; i++)
        {
            blocking[i] = registry.RunAsync(
                blockerIds[i],
                _ =>
                {
                    Interlocked.Increment(ref blockersRunning);
                    release.Wait();
                    return Task.FromResult(0);
                },
                blockerOptions);
        }

        // Starved: every pool thread blocked and blockers still queued for one.
        long waitUntil = Environment.TickCount64 + 5_000;
        while (blockers > 0 && !(Volatile.Read(ref blockersRunning) > 0 && ThreadPool.PendingWorkItemCount > 0) && Environment.TickCount64 < waitUntil)
        {
            Thread.Sleep(10);
        }

        Thread.Sleep(blockers > 0 ? 100 : 0);
        int poolThreadsAtStart = ThreadPool.ThreadCount;
        long pendingAtStart = ThreadPool.PendingWorkItemCount;
        int runningAtStart = Volatile.Read(ref blockersRunning);

        using var pollerStop = new CancellationTokenSource();
        Thread? poller = null;
        if (api == "handle")
        {
            poller = new Thread(() => Poll(handles, abortPolled, evictPolled, pollerStop.Token)) { IsBackground = true, Name = "starve poller" };
        }

        for (int i = 0; i < runs; i++)
        {
            startedAt[i] = Stopwatch.GetTimestamp();
            if (api == "handle")
            {
                RunHandle run = registry.Start(ids[i]);
                run.Attach(hung.Task);
                handles[i] = run;
            }
            else
            {
                int index = i;
                Task<int> call = registry.RunAsync(ids[i], _ => hung.Task);
                calls[i] = call;
                _ = call.ContinueWith(_ => callerSaw[index] = Stopwatch.GetTimestamp(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }

        poller?.Start();
        bool finished = evictions.Wait(timeout + grace + TimeSpan.FromSeconds(30));
        long lastEviction = Stopwatch.GetTimestamp();
        int poolThreadsAtEnd = ThreadPool.ThreadCount;
        long pendingAtEnd = ThreadPool.PendingWorkItemCount;
        int runningAtEnd = Volatile.Read(ref blockersRunning);
        TimeSpan lastTickLateness = registry.WatchdogLateness;

        // Let the poller see the last evictions, then let the blockers and the hung providers go.
        Thread.Sleep(20);
        pollerStop.Cancel();
        poller?.Join();
        release.Set();
        long released = Stopwatch.GetTimestamp();
        bool blockersDone = Task.WhenAll(blocking).ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(60));
        bool callersDone = calls.Length == 0 || Task.WhenAll(calls).ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(60));
        hung.TrySetResult(0);
        int thrown = calls.Count(static c => c.IsFaulted && c.Exception!.InnerException is RunEvictedException);

        double abortDue = timeout.TotalMilliseconds;
        double evictDue = (timeout + grace).TotalMilliseconds;
        Lateness abort = Lateness.Of(startedAt, abortLogged, abortDue);
        Lateness evict = Lateness.Of(startedAt, evictRaised, evictDue);
        Lateness polledAbort = api == "handle" ? Lateness.Of(startedAt, abortPolled, abortDue) : Lateness.None;
        Lateness polledEvict = api == "handle" ? Lateness.Of(startedAt, evictPolled, evictDue) : Lateness.None;
        Lateness caller = api == "runasync" ? Lateness.Of(startedAt, callerSaw, evictDue) : Lateness.None;
        double latenessMax;
        lock (indexOf)
        {
            latenessMax = latenessMaxMs;
        }

        ok = finished && blockersDone && callersDone
            && abort.Missing == 0 && evict.Missing == 0 && polledAbort.Missing == 0 && polledEvict.Missing == 0
            && Math.Max(Math.Max(abort.Max, evict.Max), Math.Max(polledAbort.Max, polledEvict.Max)) <= maxLateMs
            && (api != "runasync" || thrown == runs);
        if (!quiet)
        {
            Console.WriteLine();
            Console.WriteLine($"## --api {api}: {runs} hung runs via {(api == "handle" ? "Start + Attach" : "RunAsync")}, {blockers} blockers");
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Pool when the hung runs started: {poolThreadsAtStart} threads, {pendingAtStart} work items queued, {runningAtStart} of {blockers} blockers running (the rest wait for a thread). " +
                $"At the last eviction: {poolThreadsAtEnd} threads, {pendingAtEnd} queued, {runningAtEnd} blockers running."));
            if (blockers > 0 && pendingAtStart == 0)
            {
                Console.WriteLine("note: nothing was queued on the pool when the hung runs started, so it was not starved; use more --blockers.");
            }

            Console.WriteLine();
            Console.WriteLine("| what | observed by | seen | p50 ms late | p99 ms | max ms |");
            Console.WriteLine("|---|---|---:|---:|---:|---:|");
            abort.Print("abort (at the deadline)", "`RunTimedOut` warning, watchdog thread", runs);
            if (api == "handle")
            {
                polledAbort.Print("abort (at the deadline)", "poller: `AbortToken` cancelled", runs);
            }

            evict.Print("force eviction (deadline + grace)", "`RunEnded` (`ForceEvicted`)", runs);
            if (api == "handle")
            {
                polledEvict.Print("force eviction (deadline + grace)", "poller: `Status == Evicted`", runs);
            }
            else
            {
                caller.Print("caller's `RunEvictedException` (information)", "continuation of the `RunAsync` task", runs);
            }

            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Registry: WatchdogLateness (last tick with due work) {lastTickLateness.TotalMilliseconds:F1} ms; largest runsupervisor.watchdog.lateness recorded {latenessMax:F1} ms; " +
                $"WatchdogLate warnings (event 16): {logs.Count(WatchdogLateEventId)}."));
            if (api == "runasync")
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"RunAsync calls that threw RunEvictedException: {thrown} of {runs}; the blockers were let go {Stopwatch.GetElapsedTime(lastEviction, released).TotalMilliseconds:F0} ms after the last eviction."));
            }

            Console.WriteLine(ok ? $"ok: all within {maxLateMs} ms." : $"LATE or MISSING: see above (finished {finished}, blockers done {blockersDone}, callers done {callersDone}).");
        }

        GC.KeepAlive(handles);
        return string.Create(CultureInfo.InvariantCulture,
            $"{api},{blockers},{runs},{timeout.TotalMilliseconds},{grace.TotalMilliseconds},{runs - abort.Missing},{runs - evict.Missing},{abort.P50:F2},{abort.P99:F2},{abort.Max:F2},{evict.P50:F2},{evict.P99:F2},{evict.Max:F2}," +
            $"{(api == "handle" ? polledAbort.Max.ToString("F2", CultureInfo.InvariantCulture) : string.Empty)},{(api == "handle" ? polledEvict.Max.ToString("F2", CultureInfo.InvariantCulture) : string.Empty)}," +
            $"{lastTickLateness.TotalMilliseconds:F2},{latenessMax:F2},{poolThreadsAtStart},{pendingAtStart},{runningAtStart}");
    }

    /// <summary>Polls every handle about once a millisecond, on a thread of its own, until every run is evicted or <paramref name="stop"/>.</summary>
    private static void Poll(RunHandle?[] handles, long[] abortSeen, long[] evictSeen, CancellationToken stop)
    {
        int left = handles.Length;
        while (left > 0 && !stop.IsCancellationRequested)
        {
            for (int i = 0; i < handles.Length; i++)
            {
                RunHandle run = handles[i]!;
                if (evictSeen[i] != 0)
                {
                    continue;
                }

                long now = Stopwatch.GetTimestamp();
                if (abortSeen[i] == 0 && run.AbortToken.IsCancellationRequested)
                {
                    abortSeen[i] = now;
                }

                if (run.Status == RunStatus.Evicted)
                {
                    evictSeen[i] = now;
                    left--;
                }
            }

            Thread.Sleep(1);
        }
    }

    private static object? Field(object? state, string name)
    {
        if (state is IReadOnlyList<KeyValuePair<string, object?>> fields)
        {
            foreach (KeyValuePair<string, object?> field in fields)
            {
                if (field.Key == name)
                {
                    return field.Value;
                }
            }
        }

        return null;
    }

    /// <summary>How late a set of observations was: each minus its start and its due offset, in milliseconds.</summary>
    private readonly record struct Lateness(int Missing, double P50, double P99, double Max)
    {
        public static Lateness None => new(0, double.NaN, double.NaN, double.NegativeInfinity);

        public static Lateness Of(long[] startedAt, long[] observedAt, double dueMs)
        {
            var late = new List<double>(startedAt.Length);
            int missing = 0;
            for (int i = 0; i < startedAt.Length; i++)
            {
                if (observedAt[i] == 0)
                {
                    missing++;
                    continue;
                }

                late.Add(((observedAt[i] - startedAt[i]) * 1e3 / Stopwatch.Frequency) - dueMs);
            }

            double[] sample = [.. late];
            return sample.Length == 0
                ? new Lateness(missing, double.NaN, double.NaN, double.PositiveInfinity)
                : new Lateness(missing, Percentiles.Of(sample, 50), Percentiles.Of(sample, 99), sample[^1]);
        }

        public void Print(string what, string observedBy, int runs)
            => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {what} | {observedBy} | {runs - Missing} of {runs} | {P50:F1} | {P99:F1} | {Max:F1} |"));
    }

    /// <summary>A logger factory whose loggers report every warning and error's event id and state, synchronously.</summary>
    private sealed class CapturingLoggerFactory(Action<int, object?> onLog) : ILoggerFactory, ILogger
    {
        private readonly Dictionary<int, int> _counts = [];

        public int Count(int eventId)
        {
            lock (_counts)
            {
                return _counts.GetValueOrDefault(eventId);
            }
        }

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            lock (_counts)
            {
                _counts[eventId.Id] = _counts.GetValueOrDefault(eventId.Id) + 1;
            }

            onLog(eventId.Id, state);
        }
    }
}
