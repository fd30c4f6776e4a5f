using RunSupervisor.Leasing;

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

    /// <summary>
    /// Gets or sets the longest a start waits for admission (<see cref="SessionBusyBehavior.Wait"/>, or a full lane),
    /// separate from the run's own timeout, which starts only at admission. Default 2 minutes; zero (never wait) to
    /// <see cref="RunTimeoutLimit"/>. Per start: <see cref="RunStartOptions.QueueTimeout"/>.
    /// </summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Gets or sets how many starts may wait for one session at a time. Default 20; at least 1.</summary>
    public int MaxQueuedPerSession { get; set; } = 20;

    /// <summary>Gets or sets what a start does when its session's queue is full. Default <see cref="QueueOverflowBehavior.RejectNewest"/>.</summary>
    public QueueOverflowBehavior QueueOverflow { get; set; }

    /// <summary>Gets or sets the cap on concurrent runs across all lanes and sessions. Default 0 (unlimited); not negative.</summary>
    public int MaxActiveRuns { get; set; }

    /// <summary>
    /// Gets the admission lanes: a name (chosen per start by <see cref="RunStartOptions.Lane"/>) and the cap on that
    /// lane's concurrent runs, at least 1; e.g. <c>Lanes["cron"] = 2</c>. Starts without a lane use the default lane,
    /// capped only by <see cref="MaxActiveRuns"/>, whose name in logs, metrics and health data is <c>default</c>: that
    /// name is reserved. Names are compared ordinally.
    /// </summary>
    public IDictionary<string, int> Lanes { get; } = new Dictionary<string, int>(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets how long a run may go without <see cref="RunHandle.ReportProgress"/> (the idle clock starts at the
    /// run's start) before it is aborted like a timeout and ends <see cref="RunEndReason.Stalled"/>. Progress never moves
    /// the deadline. Default <see langword="null"/> (off); otherwise greater than zero and at most <see cref="RunTimeoutLimit"/>.
    /// Per start: <see cref="RunStartOptions.IdleTimeout"/>.
    /// </summary>
    public TimeSpan? IdleTimeout { get; set; }

    /// <summary>
    /// Gets how the registry uses its lease store (<see cref="IRunLeaseStore"/>), when it has one: time to live, renew
    /// interval, safety margin, timeouts, and what to do when the store is unreachable. Bound from <c>RunSupervisor:Lease</c>.
    /// </summary>
    public RunLeaseOptions Lease { get; } = new();
}
