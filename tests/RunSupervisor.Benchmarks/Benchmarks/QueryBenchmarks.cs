using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (c): the hot queries a host makes on every incoming message and heartbeat tick, on an idle and on a busy
/// session, with <see cref="ActiveRuns"/> runs active. Target: ≤ 50 ns and 0 B per call for RunSupervisor.
/// </summary>
/// <remarks>
/// Each category compares RunSupervisor with the floor's dictionary lookup (plus the same decision table,
/// hand-rolled, for <c>Resolve</c>). The Polly peer is left out: Polly has no part in a query, so its query is the
/// floor's. A busy heartbeat is dropped, so RunSupervisor also counts it (under its policy lock) and would log it.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class QueryBenchmarks
{
    private const string IdleSessionId = "idle-session-c";

    private FloorSupervisor _floor = null!;
    private ActiveRunRegistry _registry = null!;
    private HeartbeatQueuePolicy _policy = null!;
    private string _busySessionId = null!;

    /// <summary>Gets or sets how many runs are active.</summary>
    [Params(1_000, 100_000)]
    public int ActiveRuns { get; set; }

    /// <summary>Fills the floor.</summary>
    [GlobalSetup(Targets = [nameof(FloorIsActiveIdle), nameof(FloorIsActiveBusy), nameof(FloorTryGetIdle), nameof(FloorResolveIdleHeartbeat), nameof(FloorResolveBusyMessage), nameof(FloorResolveBusyHeartbeat)])]
    public void SetupFloor()
    {
        _floor = WarmRegistries.Floor(ActiveRuns);
        _busySessionId = WarmRegistries.WarmSessionIds(1)[0];
    }

    /// <summary>Fills the registry and attaches a heartbeat policy.</summary>
    [GlobalSetup(Targets = [nameof(IsActiveIdle), nameof(IsActiveBusy), nameof(TryGetRunIdle), nameof(ResolveIdleHeartbeat), nameof(ResolveBusyMessage), nameof(ResolveBusyHeartbeat)])]
    public void SetupRegistry()
    {
        _registry = WarmRegistries.Registry(ActiveRuns);
        _policy = new HeartbeatQueuePolicy(_registry);
        _busySessionId = WarmRegistries.WarmSessionIds(1)[0];
    }

    /// <summary>Disposes whichever implementation was set up.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _floor?.Dispose();
        _policy?.Dispose();
        _registry?.Dispose();
    }

    /// <summary>Floor: <c>ContainsKey</c> on an idle session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("IsActive idle")]
    public bool FloorIsActiveIdle() => _floor.IsActive(IdleSessionId);

    /// <summary><see cref="ActiveRunRegistry.IsActive(string)"/> on an idle session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("IsActive idle")]
    public bool IsActiveIdle() => _registry.IsActive(IdleSessionId);

    /// <summary>Floor: <c>ContainsKey</c> on a busy session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("IsActive busy")]
    public bool FloorIsActiveBusy() => _floor.IsActive(_busySessionId);

    /// <summary><see cref="ActiveRunRegistry.IsActive(string)"/> on a busy session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("IsActive busy")]
    public bool IsActiveBusy() => _registry.IsActive(_busySessionId);

    /// <summary>Floor: <c>ContainsKey</c> standing in for a lookup on an idle session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("TryGetRun idle")]
    public bool FloorTryGetIdle() => _floor.IsActive(IdleSessionId);

    /// <summary><see cref="ActiveRunRegistry.TryGetRun(string, out RunInfo?)"/> on an idle session.</summary>
    /// <returns>Whether the session is busy.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("TryGetRun idle")]
    public bool TryGetRunIdle() => _registry.TryGetRun(IdleSessionId, out _);

    /// <summary>Floor: decision table for a heartbeat on an idle session.</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("Resolve idle heartbeat")]
    public QueueDecision FloorResolveIdleHeartbeat() => _floor.Resolve(new QueueRequest(IdleSessionId, IsHeartbeat: true));

    /// <summary><see cref="HeartbeatQueuePolicy.Resolve(in QueueRequest)"/> for a heartbeat on an idle session (run now).</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("Resolve idle heartbeat")]
    public QueueDecision ResolveIdleHeartbeat() => _policy.Resolve(new QueueRequest(IdleSessionId, IsHeartbeat: true));

    /// <summary>Floor: decision table for a user message on a busy session.</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("Resolve busy message")]
    public QueueDecision FloorResolveBusyMessage() => _floor.Resolve(new QueueRequest(_busySessionId, IsHeartbeat: false));

    /// <summary><see cref="HeartbeatQueuePolicy.Resolve(in QueueRequest)"/> for a user message on a busy session (enqueue).</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("Resolve busy message")]
    public QueueDecision ResolveBusyMessage() => _policy.Resolve(new QueueRequest(_busySessionId, IsHeartbeat: false));

    /// <summary>Floor: decision table for a heartbeat on a busy session (drop, not counted).</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Baseline = true, Description = "Floor")]
    [BenchmarkCategory("Resolve busy heartbeat")]
    public QueueDecision FloorResolveBusyHeartbeat() => _floor.Resolve(new QueueRequest(_busySessionId, IsHeartbeat: true));

    /// <summary><see cref="HeartbeatQueuePolicy.Resolve(in QueueRequest)"/> for a heartbeat on a busy session (drop: counted, logged).</summary>
    /// <returns>The decision.</returns>
    [Benchmark(Description = "RunSupervisor")]
    [BenchmarkCategory("Resolve busy heartbeat")]
    public QueueDecision ResolveBusyHeartbeat() => _policy.Resolve(new QueueRequest(_busySessionId, IsHeartbeat: true));
}
