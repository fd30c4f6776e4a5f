using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (a): start a run on an idle session and release it, with <see cref="ActiveRuns"/> other runs active.
/// Target: RunSupervisor ≤ 1.2 × the floor's time, ≤ 1.0 × its allocated bytes, ≤ 0.8 × the peer's time.
/// </summary>
[MemoryDiagnoser]
public class StartReleaseBenchmarks : ThreeWayBenchmark
{
    private const string SessionId = "bench-session-a";

    private HeartbeatQueuePolicy? _policy;

    /// <summary>Fills the registry and subscribes a heartbeat policy to it, as a host does.</summary>
    [GlobalSetup(Target = nameof(RegistryWithPolicy))]
    public void SetupRegistryWithPolicy()
    {
        ActiveRegistry = WarmRegistries.Registry(ActiveRuns);
        _policy = new HeartbeatQueuePolicy(ActiveRegistry);
    }

    /// <inheritdoc/>
    protected override void CleanupExtras() => _policy?.Dispose();

    /// <summary>Dictionary entry + self-cancelling CTS + grace ITimer, removed and disposed.</summary>
    [Benchmark(Baseline = true, Description = "Floor")]
    public void Floor() => FloorSupervisor.StartAndRelease(SessionId);

    /// <summary>Dictionary entry + CTS + Polly timeout pipeline executing a completed delegate.</summary>
    [Benchmark(Description = "Peer (Polly)")]
    public void Peer() => PollyPeer.StartAndRelease(SessionId);

    /// <summary><see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> then <see cref="RunHandle.Dispose"/>.</summary>
    [Benchmark(Description = "RunSupervisor")]
    public void Registry()
    {
        RunHandle run = ActiveRegistry.Start(SessionId);
        run.Dispose();
    }

    /// <summary>The same with a <see cref="HeartbeatQueuePolicy"/> subscribed to <see cref="ActiveRunRegistry.RunEnded"/>, as in a host.</summary>
    [Benchmark(Description = "RunSupervisor + policy")]
    public void RegistryWithPolicy()
    {
        RunHandle run = ActiveRegistry.Start(SessionId);
        run.Dispose();
    }
}
