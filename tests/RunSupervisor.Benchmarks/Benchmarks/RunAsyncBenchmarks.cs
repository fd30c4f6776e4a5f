using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (b): run a provider whose task has already completed, as the session's supervised run, with
/// <see cref="ActiveRuns"/> other runs active. The provider returns a cached task, so only the supervision is measured.
/// </summary>
[MemoryDiagnoser]
public class RunAsyncBenchmarks
{
    private const string SessionId = "bench-session-b";

    // Cached by the runtime for small values too, but explicit: the provider itself never allocates.
    private static readonly Task<int> CompletedResult = Task.FromResult(1);
    private static readonly Func<CancellationToken, Task<int>> Provider = static _ => CompletedResult;

    private FloorSupervisor _floor = null!;
    private PollyPeer _peer = null!;
    private ActiveRunRegistry _registry = null!;

    /// <summary>Gets or sets how many runs are active while the measured run executes.</summary>
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

    /// <summary>Disposes whichever implementation was set up.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _floor?.Dispose();
        _peer?.Dispose();
        _registry?.Dispose();
    }

    /// <summary>Floor: entry + CTS + grace timer around <c>await provider(token)</c>.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    public Task<int> Floor() => _floor.RunAsync(SessionId, Provider);

    /// <summary>Peer: entry + CTS + Polly timeout pipeline around the provider.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "Peer (Polly)")]
    public Task<int> Peer() => _peer.RunAsync(SessionId, Provider);

    /// <summary><see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "RunSupervisor")]
    public Task<int> Registry() => _registry.RunAsync(SessionId, Provider);
}
