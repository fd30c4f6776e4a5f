namespace RunSupervisor;

/// <summary>
/// Options for <see cref="ActiveRunRegistry"/>. Validated when the registry is created (and, through
/// dependency injection, by <see cref="Microsoft.Extensions.Options.IValidateOptions{TOptions}"/>): an invalid
/// value fails with a message that names the option and its allowed range.
/// </summary>
public sealed class RunSupervisorOptions
{
    /// <summary>The default configuration section name, "RunSupervisor".</summary>
    public const string SectionName = "RunSupervisor";

    /// <summary>The largest allowed <see cref="RunTimeout"/> (and per-run <see cref="RunStartOptions.Timeout"/>): 24 days.</summary>
    public static readonly TimeSpan RunTimeoutLimit = TimeSpan.FromDays(24);

    /// <summary>The largest allowed <see cref="GracePeriod"/> (and per-run <see cref="RunStartOptions.GracePeriod"/>): 24 days.</summary>
    public static readonly TimeSpan GracePeriodLimit = TimeSpan.FromDays(24);

    /// <summary>The largest allowed <see cref="MaxRunDuration"/>: 365 days.</summary>
    public static readonly TimeSpan MaxRunDurationLimit = TimeSpan.FromDays(365);

    /// <summary>
    /// Gets or sets how long a run may take before its abort token is cancelled.
    /// Default 10 minutes; greater than zero, at most 24 days and at most <see cref="MaxRunDuration"/>.
    /// </summary>
    public TimeSpan RunTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Gets or sets how long an aborted run has to settle before it is force-evicted.
    /// Default 30 seconds; zero (evict at the deadline) to 24 days.
    /// </summary>
    public TimeSpan GracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets the hard cap on a run's deadline, measured from its start, including every
    /// <see cref="RunHandle.TryExtendDeadline(TimeSpan)"/>. Default 1 hour; at least <see cref="RunTimeout"/> and at most 365 days.
    /// </summary>
    public TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Gets or sets how many abandoned runs the ledger remembers; past it the oldest is forgotten with a
    /// warning. Default 1000; at least 1.
    /// </summary>
    public int MaxAbandonedRuns { get; set; } = 1000;

    /// <summary>
    /// Gets or sets how late the watchdog may handle an abort or eviction before it logs a warning (event 16,
    /// <c>WatchdogLate</c>) and health checks report Degraded. A late watchdog means a starved thread pool or a
    /// paused process. Default 1 second; greater than zero and at most <see cref="GracePeriodLimit"/>.
    /// </summary>
    public TimeSpan WatchdogLatenessThreshold { get; set; } = TimeSpan.FromSeconds(1);
}
