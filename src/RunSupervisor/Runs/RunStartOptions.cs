namespace RunSupervisor;

/// <summary>
/// Per-run overrides for <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> and the methods built on it.
/// Values are validated when the run starts; an invalid value throws <see cref="ArgumentOutOfRangeException"/>
/// and nothing is started.
/// </summary>
public sealed class RunStartOptions
{
    /// <summary>
    /// Gets the run's timeout, overriding <see cref="RunSupervisorOptions.RunTimeout"/>.
    /// Must be greater than zero, at most <see cref="RunSupervisorOptions.MaxRunDuration"/> and at most
    /// <see cref="RunSupervisorOptions.RunTimeoutLimit"/>.
    /// </summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>
    /// Gets the run's grace period, overriding <see cref="RunSupervisorOptions.GracePeriod"/>.
    /// Must be between zero and <see cref="RunSupervisorOptions.GracePeriodLimit"/>.
    /// </summary>
    public TimeSpan? GracePeriod { get; init; }

    /// <summary>
    /// Gets what the start does when the session already has an active run: <see cref="SessionBusyBehavior.Reject"/>
    /// (the default) fails with <see cref="SessionBusyException"/>; <see cref="SessionBusyBehavior.Supersede"/> aborts
    /// the active run, which ends at once with <see cref="RunEndReason.Superseded"/>; <see cref="SessionBusyBehavior.Wait"/>
    /// queues the start (asynchronous starts only). Must be a defined value. A foreground start on a session whose run
    /// is <see cref="Background"/> preempts that run whatever this says.
    /// </summary>
    public SessionBusyBehavior WhenBusy { get; init; }

    /// <summary>
    /// Gets the longest this start waits for admission, overriding <see cref="RunSupervisorOptions.QueueTimeout"/>;
    /// zero fails at once with <see cref="RunQueueTimeoutException"/> instead of waiting. Between zero and
    /// <see cref="RunSupervisorOptions.RunTimeoutLimit"/>.
    /// </summary>
    public TimeSpan? QueueTimeout { get; init; }

    /// <summary>
    /// Gets the run's idle timeout, overriding <see cref="RunSupervisorOptions.IdleTimeout"/>: no
    /// <see cref="RunHandle.ReportProgress"/> for this long aborts the run (<see cref="RunEndReason.Stalled"/>).
    /// Greater than zero and at most <see cref="RunSupervisorOptions.RunTimeoutLimit"/>; <see cref="Timeout.InfiniteTimeSpan"/>
    /// turns off a registry-wide idle timeout for this run.
    /// </summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>
    /// Gets a value indicating whether the run is background work (a heartbeat or cron turn) that yields to the user:
    /// a later foreground start on the same session supersedes it at once, whatever its <see cref="WhenBusy"/>, and it
    /// never supersedes a foreground run itself: with <see cref="SessionBusyBehavior.Supersede"/> it replaces only a
    /// background run, and is refused (<see cref="SessionBusyException"/>) by a foreground one. Preemption never crosses sessions.
    /// </summary>
    public bool Background { get; init; }

    /// <summary>
    /// Gets the admission lane, one of <see cref="RunSupervisorOptions.Lanes"/>; <see langword="null"/> for the default
    /// lane. An unknown name is an <see cref="ArgumentException"/> naming it.
    /// </summary>
    public string? Lane { get; init; }
}
