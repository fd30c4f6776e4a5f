namespace RunSupervisor;

/// <summary>
/// How a run left the <see cref="ActiveRunRegistry"/>. Every run ends with exactly one reason.
/// </summary>
public enum RunEndReason
{
    /// <summary>The run was released (its handle disposed, or its attached provider task completed) while it was running normally.</summary>
    Completed,

    /// <summary>The attached provider task faulted while the run was running normally.</summary>
    Faulted,

    /// <summary>
    /// The run was aborted (<see cref="RunHandle.Abort(string?)"/>, <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>
    /// or a drain) and then released within its grace period; or the registry was disposed (every run ends at once); or
    /// its attached provider task was cancelled (by a token other than the run's) while the run was running normally.
    /// </summary>
    Aborted,

    /// <summary>The run passed its deadline, its abort token was cancelled, and it was released within its grace period.</summary>
    TimedOut,

    /// <summary>
    /// A new run was started on the session with <see cref="RunStartOptions.WhenBusy"/> set to <see cref="SessionBusyBehavior.Supersede"/>,
    /// or a foreground start preempted this background run (<see cref="RunStartOptions.Background"/>); the old run was taken out of the registry at once.
    /// </summary>
    Superseded,

    /// <summary>The run did not settle within the grace period after its abort; the watchdog (or a drain) removed it from the registry.</summary>
    ForceEvicted,

    /// <summary>
    /// The run made no progress (<see cref="RunHandle.ReportProgress"/>) for its idle timeout
    /// (<see cref="RunStartOptions.IdleTimeout"/>), its abort token was cancelled, and it was released within its grace period.
    /// </summary>
    Stalled,

    /// <summary>
    /// The run's lease (<see cref="Leasing.IRunLeaseStore"/>) expired, was taken over by another host, or could not be
    /// confirmed in time: the session may already be another host's, so the run left the registry at once, with no grace
    /// period, and its abort token was cancelled.
    /// </summary>
    LeaseLost,
}
