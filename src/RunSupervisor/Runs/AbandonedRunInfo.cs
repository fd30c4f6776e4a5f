namespace RunSupervisor;

/// <summary>
/// A run that left the registry (force-evicted or superseded) while its provider had not settled yet.
/// It stays in the abandoned ledger until its provider settles or the ledger's cap forgets it.
/// </summary>
/// <param name="SessionId">The session the run belonged to.</param>
/// <param name="RunId">The run's id.</param>
/// <param name="StartedAt">When the run started.</param>
/// <param name="EvictedAt">When the run was taken out of the registry.</param>
public sealed record AbandonedRunInfo(string SessionId, long RunId, DateTimeOffset StartedAt, DateTimeOffset EvictedAt);
