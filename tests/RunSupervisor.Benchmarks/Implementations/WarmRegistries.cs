namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>
/// Builds the three implementations with <c>activeRuns</c> runs already active ("warm"), all with the registry's
/// default timeout (10 min) and grace period (30 s), so nothing fires while a benchmark process runs.
/// </summary>
public static class WarmRegistries
{
    /// <summary>The timeout every implementation uses: <see cref="RunSupervisorOptions.RunTimeout"/>'s default.</summary>
    public static readonly TimeSpan Timeout = new RunSupervisorOptions().RunTimeout;

    /// <summary>The grace period every implementation uses: <see cref="RunSupervisorOptions.GracePeriod"/>'s default.</summary>
    public static readonly TimeSpan GracePeriod = new RunSupervisorOptions().GracePeriod;

    /// <summary>The session ids of the warm runs, "warm-00000000" upwards; <c>[0]</c> is a busy session.</summary>
    /// <param name="activeRuns">How many.</param>
    /// <returns>The ids.</returns>
    public static string[] WarmSessionIds(int activeRuns) => BenchSessionIds.Create("warm", activeRuns);

    /// <summary>Creates the floor with <paramref name="activeRuns"/> active runs.</summary>
    /// <param name="activeRuns">How many runs to start.</param>
    /// <returns>The floor.</returns>
    public static FloorSupervisor Floor(int activeRuns)
    {
        var floor = new FloorSupervisor(Timeout, GracePeriod);
        foreach (string sessionId in WarmSessionIds(activeRuns))
        {
            floor.Start(sessionId);
        }

        return floor;
    }

    /// <summary>Creates the Polly peer with <paramref name="activeRuns"/> runs in flight.</summary>
    /// <param name="activeRuns">How many runs to start.</param>
    /// <returns>The peer.</returns>
    public static PollyPeer Peer(int activeRuns)
    {
        var peer = new PollyPeer(Timeout);
        peer.AddHangingRuns(WarmSessionIds(activeRuns));
        return peer;
    }

    /// <summary>Creates a registry (default options, <see cref="TimeProvider.System"/>, no logging) with <paramref name="activeRuns"/> active runs.</summary>
    /// <param name="activeRuns">How many runs to start.</param>
    /// <returns>The registry; disposing it ends the warm runs.</returns>
    public static ActiveRunRegistry Registry(int activeRuns) => Registry(activeRuns, configure: null);

    /// <summary>Creates a registry with <paramref name="activeRuns"/> active runs, its options adjusted by <paramref name="configure"/>.</summary>
    /// <param name="activeRuns">How many runs to start.</param>
    /// <param name="configure">Adjusts the default options; <see langword="null"/> for none.</param>
    /// <returns>The registry.</returns>
    public static ActiveRunRegistry Registry(int activeRuns, Action<RunSupervisorOptions>? configure)
    {
        var options = new RunSupervisorOptions();
        configure?.Invoke(options);
        var registry = new ActiveRunRegistry(options, TimeProvider.System);
        foreach (string sessionId in WarmSessionIds(activeRuns))
        {
            // The handles stay referenced by the registry; the benchmark never releases them.
            _ = registry.Start(sessionId);
        }

        return registry;
    }
}
