using BenchmarkDotNet.Attributes;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// <see cref="RunHandle.ReportProgress"/> (a streamed token restarts the run's idle clock) against a high-resolution
/// clock read (baseline) and the system tick it reads on <see cref="TimeProvider.System"/>. Target: ≤ 10 ns and 0 B per
/// call.
/// </summary>
[MemoryDiagnoser]
public class ProgressBenchmarks
{
    private ActiveRunRegistry _registry = null!;
    private RunHandle _run = null!;

    /// <summary>A running run with an idle timeout.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _registry = new ActiveRunRegistry(new RunSupervisorOptions { IdleTimeout = TimeSpan.FromMinutes(5) });
        _run = _registry.Start("bench-session-progress");
    }

    /// <summary>Ends the run.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _run.Dispose();
        _registry.Dispose();
    }

    /// <summary>One monotonic clock read, the floor of any progress report.</summary>
    /// <returns>The timestamp.</returns>
    [Benchmark(Baseline = true, Description = "TimeProvider.GetTimestamp")]
    public long Clock() => TimeProvider.System.GetTimestamp();

    /// <summary>One read of the system tick, the progress clock on <see cref="TimeProvider.System"/>.</summary>
    /// <returns>The tick count.</returns>
    [Benchmark(Description = "Environment.TickCount64")]
    public long Tick() => Environment.TickCount64;

    /// <summary>One progress report.</summary>
    [Benchmark(Description = "ReportProgress")]
    public void Report() => _run.ReportProgress();
}
