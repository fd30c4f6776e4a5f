using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace RunSupervisor.HealthChecks;

/// <summary>
/// Reports the registry's health: Unhealthy (the registration's failure status) when the abandoned-run ledger is full,
/// Degraded when runs are abandoned, a session keeps dropping heartbeats, the lease store is unreachable or the
/// watchdog ran late, Healthy otherwise; the data also carry queue lengths and oldest waits per lane and lease counts. Reads snapshots only:
/// it never blocks a run and never changes anything.
/// </summary>
internal sealed class RunSupervisorHealthCheck : IHealthCheck
{
    public const string ActiveRunsKey = "active_runs";
    public const string AbandonedRunsKey = "abandoned_runs";
    public const string MaxAbandonedRunsKey = "max_abandoned_runs";
    public const string OldestActiveRunAgeKey = "oldest_active_run_age_seconds";
    public const string OldestAbandonedRunAgeKey = "oldest_abandoned_run_age_seconds";
    public const string SessionsDroppingHeartbeatsKey = "sessions_dropping_heartbeats";
    public const string LongestHeartbeatDropStreakKey = "longest_heartbeat_drop_streak";
    public const string WatchdogLatenessKey = "watchdog_lateness_seconds";
    public const string QueuedStartsKey = "queued_starts";
    public const string OldestQueuedWaitKey = "oldest_queued_wait_seconds";
    public const string LeaseStoreAvailableKey = "lease_store_available";
    public const string LeasesLostKey = "leases_lost";
    public const string UnfencedStartsKey = "unfenced_starts";

    private static readonly IReadOnlyDictionary<string, int> NoDrops = new Dictionary<string, int>();

    private readonly ActiveRunRegistry _registry;
    private readonly HeartbeatQueuePolicy? _policy;
    private readonly TimeProvider _timeProvider;
    private readonly RunSupervisorHealthCheckOptions _options;

    public RunSupervisorHealthCheck(ActiveRunRegistry registry, HeartbeatQueuePolicy? policy, TimeProvider timeProvider, RunSupervisorHealthCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(options);
        _registry = registry;
        _policy = policy;
        _timeProvider = timeProvider;
        _options = options;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        DateTimeOffset now = _timeProvider.GetUtcNow();
        IReadOnlyList<RunInfo> active = _registry.GetActiveRuns();
        IReadOnlyList<AbandonedRunInfo> abandoned = _registry.GetAbandonedRuns();
        IReadOnlyDictionary<string, int> drops = _policy?.GetDroppedHeartbeats() ?? NoDrops;

        // Active runs are ordered by run id (start order); the ledger by eviction, oldest first.
        double oldestActive = active.Count == 0 ? 0 : Seconds(now - active.Min(static r => r.StartedAt));
        double oldestAbandoned = abandoned.Count == 0 ? 0 : Seconds(now - abandoned[0].EvictedAt);
        int longestStreak = drops.Count == 0 ? 0 : drops.Values.Max();
        // Capped at the ledger's size, which the count never passes: validation rejects larger thresholds, and options
        // that reached the check some other way must still leave Unhealthy reachable.
        int maxAbandoned = _registry.MaxAbandonedRuns;
        int unhealthyAt = Math.Min(_options.UnhealthyAbandonedRuns ?? maxAbandoned, maxAbandoned);
        int degradedAt = Math.Min(_options.DegradedAbandonedRuns, maxAbandoned);
        TimeSpan lateness = _registry.WatchdogLateness;
        IReadOnlyList<LaneQueueInfo> lanes = _registry.GetQueueSnapshot();
        RunSupervisor.Leasing.RunLeaseHealth lease = _registry.GetLeaseHealth();

        var data = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [ActiveRunsKey] = active.Count,
            [AbandonedRunsKey] = abandoned.Count,
            [MaxAbandonedRunsKey] = maxAbandoned,
            [OldestActiveRunAgeKey] = oldestActive,
            [OldestAbandonedRunAgeKey] = oldestAbandoned,
            [SessionsDroppingHeartbeatsKey] = drops.Count,
            [LongestHeartbeatDropStreakKey] = longestStreak,
            [WatchdogLatenessKey] = lateness.TotalSeconds,
            [QueuedStartsKey] = lanes.Sum(static l => l.Waiting),
            [OldestQueuedWaitKey] = lanes.Where(static l => l.OldestQueuedAt is not null).Select(l => Seconds(now - l.OldestQueuedAt!.Value)).DefaultIfEmpty(0).Max(),
        };
        foreach (LaneQueueInfo lane in lanes)
        {
            string name = lane.Lane ?? "default";
            data["queued_starts." + name] = lane.Waiting;
            data["oldest_queued_wait_seconds." + name] = lane.OldestQueuedAt is { } since ? Seconds(now - since) : 0;
        }

        if (lease.HasStore)
        {
            data[LeaseStoreAvailableKey] = lease.IsStoreAvailable;
            data[LeasesLostKey] = lease.LeasesLost;
            data[UnfencedStartsKey] = lease.UnfencedStarts;
        }

        HealthCheckResult result;
        if (abandoned.Count >= unhealthyAt)
        {
            result = new HealthCheckResult(
                context.Registration.FailureStatus,
                Format("{0} abandoned run(s) reached the limit of {1}: the ledger forgets the oldest; providers are leaking (oldest evicted {2:0.#} s ago).", abandoned.Count, unhealthyAt, oldestAbandoned),
                data: data);
        }
        else if (abandoned.Count >= degradedAt)
        {
            result = HealthCheckResult.Degraded(
                Format("{0} abandoned run(s): force-evicted or superseded while their provider was still pending (oldest evicted {1:0.#} s ago).", abandoned.Count, oldestAbandoned),
                data: data);
        }
        else if (longestStreak > _options.MaxHeartbeatDropStreak)
        {
            result = HealthCheckResult.Degraded(
                Format("A session dropped {0} heartbeats in a row (more than {1}): its run is holding it busy.", longestStreak, _options.MaxHeartbeatDropStreak),
                data: data);
        }
        else if (lease.HasStore && !lease.IsStoreAvailable)
        {
            // Until a store call succeeds again: new starts fail (or run unfenced) and leased runs end at their validity.
            result = HealthCheckResult.Degraded(
                Format("The run lease store is unreachable (last failure {0:O}); {1} lease(s) lost so far.", lease.LastStoreFailureAt ?? now, lease.LeasesLost),
                data: data);
        }
        else if (lateness > _registry.WatchdogLatenessThreshold)
        {
            // Stays Degraded until the watchdog's next tick with due work is on time again.
            result = HealthCheckResult.Degraded(
                Format("The watchdog ran {0:0.###} s late (more than {1:0.###} s): the thread pool is starved or the process was paused.", lateness.TotalSeconds, _registry.WatchdogLatenessThreshold.TotalSeconds),
                data: data);
        }
        else
        {
            result = HealthCheckResult.Healthy(Format("{0} active run(s), no abandoned runs.", active.Count), data);
        }

        return Task.FromResult(result);
    }

    private static double Seconds(TimeSpan age) => Math.Max(0, age.TotalSeconds);

    private static string Format(string format, params object[] args) => string.Format(CultureInfo.InvariantCulture, format, args);
}
