using BenchmarkDotNet.Attributes;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// The hand-off of a busy session to its one waiter: the running run is released and the waiting start becomes the
/// running run, against a <see cref="SemaphoreSlim"/> hand-off (<c>WaitAsync</c> queued, <c>Release</c>, the waiter
/// holds it) measured in the same run. Target: ≤ 2 × the semaphore's time, and the queued start allocates ≤ 2 × what
/// <c>WaitAsync</c> does.
/// </summary>
[MemoryDiagnoser]
public class HandOffBenchmarks
{
    private const string SessionId = "bench-session-handoff";

    private static readonly RunStartOptions WaitOptions = new() { WhenBusy = SessionBusyBehavior.Wait };

    private SemaphoreSlim _semaphore = null!;
    private ActiveRunRegistry _registry = null!;
    private RunHandle _current = null!;

    /// <summary>A semaphore held once, and a registry whose session has a running run.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _semaphore = new SemaphoreSlim(0, 1);
        _registry = new ActiveRunRegistry();
        _current = _registry.Start(SessionId);
    }

    /// <summary>Releases what is held.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _current.Dispose();
        _registry.Dispose();
        _semaphore.Dispose();
    }

    /// <summary>A waiter queues on the held semaphore; the holder releases; the waiter holds it.</summary>
    /// <returns>The waiter's completion.</returns>
    [Benchmark(Baseline = true, Description = "SemaphoreSlim")]
    public async Task Semaphore()
    {
        Task waiter = _semaphore.WaitAsync();
        _semaphore.Release();
        await waiter.ConfigureAwait(false);
    }

    /// <summary>A start waits on the busy session; the running run is released; the waiter's run runs.</summary>
    /// <returns>The waiter's admission.</returns>
    [Benchmark(Description = "RunSupervisor")]
    public async Task Registry()
    {
        ValueTask<RunHandle> waiter = _registry.StartAsync(SessionId, WaitOptions);
        _current.Dispose();
        _current = await waiter.ConfigureAwait(false);
    }
}
