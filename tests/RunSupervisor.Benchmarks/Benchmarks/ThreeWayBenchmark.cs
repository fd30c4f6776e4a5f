using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// The warm-up every benchmark shares that measures the same work three ways, in methods named <c>Floor</c>,
/// <c>Peer</c> and <c>Registry</c>: only the implementation a method measures is filled with
/// <see cref="ActiveRuns"/> active runs before it runs.
/// </summary>
public abstract class ThreeWayBenchmark
{
    /// <summary>Gets or sets how many runs are active while the measured operation runs.</summary>
    [Params(1_000, 100_000)]
    public int ActiveRuns { get; set; }

    /// <summary>Gets the floor, when the measured method is <c>Floor</c>.</summary>
    protected FloorSupervisor FloorSupervisor { get; private set; } = null!;

    /// <summary>Gets the peer, when the measured method is <c>Peer</c>.</summary>
    protected PollyPeer PollyPeer { get; private set; } = null!;

    /// <summary>Gets or sets the registry, when the measured method is <c>Registry</c> (or a variant that fills it itself).</summary>
    protected ActiveRunRegistry ActiveRegistry { get; set; } = null!;

    /// <summary>Fills the floor.</summary>
    [GlobalSetup(Target = "Floor")]
    public void SetupFloor() => FloorSupervisor = WarmRegistries.Floor(ActiveRuns);

    /// <summary>Fills the peer.</summary>
    [GlobalSetup(Target = "Peer")]
    public void SetupPeer() => PollyPeer = WarmRegistries.Peer(ActiveRuns);

    /// <summary>Fills the registry.</summary>
    [GlobalSetup(Target = "Registry")]
    public void SetupRegistry() => ActiveRegistry = WarmRegistries.Registry(ActiveRuns);

    /// <summary>Disposes whichever implementation was set up.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        CleanupExtras();
        FloorSupervisor?.Dispose();
        PollyPeer?.Dispose();
        ActiveRegistry?.Dispose();
    }

    /// <summary>Disposes what a derived benchmark set up besides the three implementations, before them.</summary>
    protected virtual void CleanupExtras()
    {
    }
}
