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
    public RunEndedEventArgs(string sessionId, long runId, RunEndReason reason, TimeSpan duration)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        SessionId = sessionId;
        RunId = runId;
        Reason = reason;
        Duration = duration;
    }

    /// <summary>Gets the session the run belonged to.</summary>
    public string SessionId { get; }

    /// <summary>Gets the run's id.</summary>
    public long RunId { get; }

    /// <summary>Gets how the run left the registry.</summary>
    public RunEndReason Reason { get; }

    /// <summary>Gets how long the run was in the registry, from its start to its end.</summary>
    public TimeSpan Duration { get; }
}
