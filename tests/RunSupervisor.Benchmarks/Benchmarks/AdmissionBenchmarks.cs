using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Admission's cost when nothing waits: <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> and
/// <see cref="ActiveRunRegistry.StartAsync(string, RunStartOptions?, CancellationToken)"/> + release on an idle session,
/// also on a registry with lanes configured and a global cap (both unused), against the floor in the same run.
/// Targets: every row ≤ 1.0 × the floor's time and ≤ 216 B; <c>StartAsync</c> within 1.1 × <c>Start</c>.
/// </summary>
[MemoryDiagnoser]
public class AdmissionBenchmarks : ThreeWayBenchmark
{
    private const string SessionId = "bench-session-admission";

    private static readonly RunStartOptions WaitOptions = new() { WhenBusy = SessionBusyBehavior.Wait };

    private ActiveRunRegistry _laned = null!;

    /// <summary>Fills a registry that has two lanes and a global cap, none of which the measured start uses or reaches.</summary>
    [GlobalSetup(Targets = [nameof(StartWithLanes), nameof(StartAsyncWaitWithLanes)])]
    public void SetupLaned()
    {
        _laned = WarmRegistries.Registry(ActiveRuns, options =>
        {
            options.Lanes["cron"] = 2;
            options.Lanes["heartbeat"] = 4;
            options.MaxActiveRuns = ActiveRuns * 2;
        });
    }

    /// <summary>Fills the plain registry for the StartAsync rows.</summary>
    [GlobalSetup(Targets = [nameof(RegistryStartAsync), nameof(RegistryStartAsyncWait)])]
    public void SetupAsync() => ActiveRegistry = WarmRegistries.Registry(ActiveRuns);

    /// <inheritdoc/>
    protected override void CleanupExtras() => _laned?.Dispose();

    /// <summary>Dictionary entry + self-cancelling CTS + grace ITimer, removed and disposed.</summary>
    [Benchmark(Baseline = true, Description = "Floor")]
    public void Floor() => FloorSupervisor.StartAndRelease(SessionId);

    /// <summary><c>Start</c> + <c>Dispose</c>.</summary>
    [Benchmark(Description = "Start")]
    public void Registry()
    {
        RunHandle run = ActiveRegistry.Start(SessionId);
        run.Dispose();
    }

    /// <summary><c>StartAsync</c> (admitted at once, completes synchronously) + <c>Dispose</c>.</summary>
    [Benchmark(Description = "StartAsync")]
    public void RegistryStartAsync()
    {
        RunHandle run = ActiveRegistry.StartAsync(SessionId).GetAwaiter().GetResult();
        run.Dispose();
    }

    /// <summary><c>StartAsync</c> with <c>WhenBusy = Wait</c> on an idle session + <c>Dispose</c>.</summary>
    [Benchmark(Description = "StartAsync (Wait)")]
    public void RegistryStartAsyncWait()
    {
        RunHandle run = ActiveRegistry.StartAsync(SessionId, WaitOptions).GetAwaiter().GetResult();
        run.Dispose();
    }

    /// <summary><c>Start</c> + <c>Dispose</c> on the registry with lanes and a global cap configured, unused.</summary>
    [Benchmark(Description = "Start, lanes configured")]
    public void StartWithLanes()
    {
        RunHandle run = _laned.Start(SessionId);
        run.Dispose();
    }

    /// <summary><c>StartAsync</c> (Wait) + <c>Dispose</c> on the registry with lanes and a global cap configured, unused.</summary>
    [Benchmark(Description = "StartAsync (Wait), lanes configured")]
    public void StartAsyncWaitWithLanes()
    {
        RunHandle run = _laned.StartAsync(SessionId, WaitOptions).GetAwaiter().GetResult();
        run.Dispose();
    }
}
