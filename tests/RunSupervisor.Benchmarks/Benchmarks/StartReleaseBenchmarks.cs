using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (a): start a run on an idle session and release it, with <see cref="ActiveRuns"/> other runs active.
/// Target: RunSupervisor ≤ 1.2 × the floor's time, ≤ 1.0 × its allocated bytes, ≤ 0.8 × the peer's time.
/// </summary>
[MemoryDiagnoser]
public class StartReleaseBenchmarks
{
    private const string SessionId = "bench-session-a";

    private FloorSupervisor _floor = null!;
    private PollyPeer _peer = null!;
    private ActiveRunRegistry _registry = null!;
    private HeartbeatQueuePolicy? _policy;

    /// <summary>Gets or sets how many runs are active in the registry while the measured run starts and ends.</summary>
    [Params(1_000, 100_000)]
    public int ActiveRuns { get; set; }

    /// <summary>Fills the floor.</summary>
    [GlobalSetup(Target = nameof(Floor))]
    public void SetupFloor() => _floor = WarmRegistries.Floor(ActiveRuns);

    /// <summary>Fills the peer.</summary>
    [GlobalSetup(Target = nameof(Peer))]
    public void SetupPeer() => _peer = WarmRegistries.Peer(ActiveRuns);

    /// <summary>Fills the registry.</summary>
    [GlobalSetup(Target = nameof(Registry))]
    public void SetupRegistry() => _registry = WarmRegistries.Registry(ActiveRuns);

    /// <summary>Fills the registry and subscribes a heartbeat policy to it, as a host does.</summary>
    [GlobalSetup(Target = nameof(RegistryWithPolicy))]
    public void SetupRegistryWithPolicy()
    {
        _registry = WarmRegistries.Registry(ActiveRuns);
        _policy = new HeartbeatQueuePolicy(_registry);
    }

    /// <summary>Disposes whichever implementation was set up.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _floor?.Dispose();
        _peer?.Dispose();
        _policy?.Dispose();
        _registry?.Dispose();
    }

    /// <summary>Dictionary entry + self-cancelling CTS + grace ITimer, removed and disposed.</summary>
    [Benchmark(Baseline = true, Description = "Floor")]
    public void Floor() => _floor.StartAndRelease(SessionId);

    /// <summary>Dictionary entry + CTS + Polly timeout pipeline executing a completed delegate.</summary>
    [Benchmark(Description = "Peer (Polly)")]
    public void Peer() => _peer.StartAndRelease(SessionId);

    /// <summary><see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> then <see cref="RunHandle.Dispose"/>.</summary>
    [Benchmark(Description = "RunSupervisor")]
    public void Registry()
    {
        RunHandle run = _registry.Start(SessionId);
        run.Dispose();
    }

    /// <summary>The same with a <see cref="HeartbeatQueuePolicy"/> subscribed to <see cref="ActiveRunRegistry.RunEnded"/>, as in a host.</summary>
    [Benchmark(Description = "RunSupervisor + policy")]
    public void RegistryWithPolicy()
    {
        RunHandle run = _registry.Start(SessionId);
        run.Dispose();
    }
}
