namespace RunSupervisor;

/// <summary>
/// Data for <see cref="ActiveRunRegistry.RunEnded"/>, raised once per run after its registry entry is gone.
/// </summary>
public sealed class RunEndedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="RunEndedEventArgs"/> class.</summary>
    /// <param name="sessionId">The session the run belonged to.</param>
    /// <param name="runId">The run's id.</param>
    /// <param name="reason">How the run left the registry.</param>
    /// <param name="duration">How long the run was in the registry.</param>
    /// <param name="detail">Why, in words; <see langword="null"/> for a plain completion.</param>
    /// <param name="endedAt">When the run left the registry.</param>
    /// <param name="fencingToken">The run's fencing token.</param>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    public RunEndedEventArgs(string sessionId, long runId, RunEndReason reason, TimeSpan duration, string? detail, DateTimeOffset endedAt, long fencingToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        SessionId = sessionId;
        RunId = runId;
        Reason = reason;
        Duration = duration;
        Detail = detail;
        EndedAt = endedAt;
        FencingToken = fencingToken;
    }

    /// <summary>Gets the session the run belonged to.</summary>
    public string SessionId { get; }

    /// <summary>Gets the run's id.</summary>
    public long RunId { get; }

    /// <summary>Gets how the run left the registry.</summary>
    public RunEndReason Reason { get; }

    /// <summary>
    /// Gets the cause in words: the text given to <see cref="RunHandle.Abort(string?)"/> or
    /// <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>, or the registry's own cause ("deadline passed
    /// after 00:10:00", "superseded by run 12", "evicted: the provider did not settle within 00:00:30 of the abort
    /// (…)"); <see langword="null"/> for <see cref="RunEndReason.Completed"/>. A watchdog end never carries a caller's
    /// text. The same text is in the <c>RunEnded</c> log line and on the run's activity.
    /// </summary>
    public string? Detail { get; }

    /// <summary>Gets when the run left the registry, from the registry's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset EndedAt { get; }

    /// <summary>Gets the run's fencing token (see <see cref="RunHandle.FencingToken"/>).</summary>
    public long FencingToken { get; }

    /// <summary>Gets how long the run was in the registry, from its start to its end.</summary>
    public TimeSpan Duration { get; }
}
