namespace RunSupervisor;

/// <summary>
/// The narrow view an internal observer (the heartbeat policy) has of run ends: told after the run has left and
/// <see cref="ActiveRunRegistry.RunEnded"/>'s handlers have run, with whether its session became idle, so it never asks back.
/// </summary>
internal interface IRunEndListener
{
    /// <summary>A run of <paramref name="sessionId"/> has left the registry; outside any lock.</summary>
    /// <param name="sessionId">The run's session.</param>
    /// <param name="sessionIdle">Whether the session is now idle: not replaced by a newer run, not ended by the registry's disposal.</param>
    void OnRunEnded(string sessionId, bool sessionIdle);
}
