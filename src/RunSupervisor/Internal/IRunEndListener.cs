namespace RunSupervisor;

/// <summary>
/// The narrow view an internal observer (the heartbeat policy) has of run ends: told after the run has left and
/// <see cref="ActiveRunRegistry.RunEnded"/>'s handlers have run, with whether its session became idle, so it never asks back.
/// </summary>
internal interface IRunEndListener
{
    /// <summary>A run of <paramref name="sessionId"/> has left the registry, or a waiting start gave up; outside any lock.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="sessionIdle">
    /// Whether the session is now idle: no run (not replaced, no waiting start admitted in its place), no start
    /// waiting, and not ended by the registry's disposal.
    /// </param>
    void OnRunEnded(string sessionId, bool sessionIdle);
}
