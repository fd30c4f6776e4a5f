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
    /// the active run, which ends at once with <see cref="RunEndReason.Superseded"/>. Must be a defined value.
    /// </summary>
    public SessionBusyBehavior WhenBusy { get; init; }
}
