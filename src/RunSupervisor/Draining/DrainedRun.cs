namespace RunSupervisor;

/// <summary>One run a drain saw, and what became of it; an entry of <see cref="DrainResult.Runs"/>.</summary>
/// <param name="SessionId">The run's session.</param>
/// <param name="RunId">The run's id.</param>
/// <param name="Reason">How the run left the registry, when it had left by the time the drain reported; otherwise <see langword="null"/>.</param>
/// <param name="Detail">The end's detail (see <see cref="RunEndedEventArgs.Detail"/>), when it had left.</param>
/// <param name="Outcome">What the drain observed.</param>
public sealed record DrainedRun(string SessionId, long RunId, RunEndReason? Reason, string? Detail, DrainOutcome Outcome);
