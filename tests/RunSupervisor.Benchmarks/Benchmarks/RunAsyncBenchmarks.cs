using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (b): run a provider whose task has already completed, as the session's supervised run, with
/// <see cref="ActiveRuns"/> other runs active. The provider returns a cached task, so only the supervision is measured.
/// </summary>
[MemoryDiagnoser]
public class RunAsyncBenchmarks : ThreeWayBenchmark
{
    private const string SessionId = "bench-session-b";

    // Cached by the runtime for small values too, but explicit: the provider itself never allocates.
    private static readonly Task<int> CompletedResult = Task.FromResult(1);
    private static readonly Func<CancellationToken, Task<int>> Provider = static _ => CompletedResult;

    /// <summary>Floor: entry + CTS + grace timer around <c>await provider(token)</c>.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    public Task<int> Floor() => FloorSupervisor.RunAsync(SessionId, Provider);

    /// <summary>Peer: entry + CTS + Polly timeout pipeline around the provider.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "Peer (Polly)")]
    public Task<int> Peer() => PollyPeer.RunAsync(SessionId, Provider);

    /// <summary>Fills the peer for the row with the thread-pool hop.</summary>
    [GlobalSetup(Target = nameof(PeerOnPool))]
    public void SetupPeerOnPool() => SetupPeer();

    /// <summary>Peer with the same guarantee as RunAsync (a blocking provider never blocks the caller): entry + CTS + Polly timeout + <c>Task.Run</c> hop.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "Peer (Polly + Task.Run)")]
    public Task<int> PeerOnPool() => PollyPeer.RunOnPoolAsync(SessionId, Provider);

    /// <summary><see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>.</summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "RunSupervisor")]
    public Task<int> Registry() => ActiveRegistry.RunAsync(SessionId, Provider);
}
