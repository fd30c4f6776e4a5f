namespace RunSupervisor.HealthChecks;

/// <summary>
/// Thresholds of the RunSupervisor health check. Validated at host start-up (an invalid value fails start-up with a
/// message that names the option and its allowed range) and when the check runs (an invalid value makes the check's entry
/// Unhealthy, with that message as its description).
/// </summary>
public sealed class RunSupervisorHealthCheckOptions
{
    /// <summary>
    /// Gets or sets how many abandoned runs (force-evicted, superseded or lease-lost while their provider was still pending) make
    /// the check Degraded. Default 1 (any abandoned run); at least 1 and at most the registry's
    /// <see cref="ActiveRunRegistry.MaxAbandonedRuns"/>, the most the ledger ever holds.
    /// </summary>
    public int DegradedAbandonedRuns { get; set; } = 1;

    /// <summary>
    /// Gets or sets how many abandoned runs make the check Unhealthy; <see langword="null"/> (the default) for the
    /// registry's <see cref="ActiveRunRegistry.MaxAbandonedRuns"/>, the point where the ledger starts forgetting runs.
    /// When set: at least <see cref="DegradedAbandonedRuns"/> and at most <see cref="ActiveRunRegistry.MaxAbandonedRuns"/>,
    /// since the ledger forgets runs past it and a larger threshold could never be reached.
    /// </summary>
    public int? UnhealthyAbandonedRuns { get; set; }

    /// <summary>
    /// Gets or sets the longest heartbeat-drop streak (heartbeats one session dropped since it was last idle) that is
    /// still healthy; a longer streak makes the check Degraded. Default 3; at least 0.
    /// </summary>
    public int MaxHeartbeatDropStreak { get; set; } = 3;
}
