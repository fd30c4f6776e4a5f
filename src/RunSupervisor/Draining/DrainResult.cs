namespace RunSupervisor;

/// <summary>
/// What a drain did: one <see cref="DrainedRun"/> per run that was active when the drain started, with what it
/// observed. The session lists are views of <see cref="Runs"/> by outcome; each session appears in exactly one.
/// </summary>
public sealed class DrainResult
{
    internal DrainResult(IReadOnlyList<DrainedRun> runs, IReadOnlyList<string>? cancelledStarts = null)
    {
        Runs = runs;
        CancelledStarts = cancelledStarts ?? [];
        Drained = Sessions(runs, DrainOutcome.Drained);
        Aborted = Sessions(runs, DrainOutcome.Aborted);
        Evicted = Sessions(runs, DrainOutcome.Evicted);
        StillRunning = Sessions(runs, DrainOutcome.StillRunning);
    }

    /// <summary>Gets every run the drain saw, in run-id order, with its end reason and detail and the drain's outcome.</summary>
    public IReadOnlyList<DrainedRun> Runs { get; }

    /// <summary>
    /// Gets the session of each start that was waiting for admission when the drain began and that the drain failed
    /// (<see cref="DrainOptions.CancelWaiting"/>), oldest first; a session appears once per start. Empty otherwise.
    /// </summary>
    public IReadOnlyList<string> CancelledStarts { get; }

    /// <summary>Gets the sessions whose runs ended within the drain's timeout by themselves or their owners.</summary>
    public IReadOnlyList<string> Drained { get; }

    /// <summary>
    /// Gets the sessions whose runs the drain aborted at its timeout. Their grace period started then; a provider
    /// that honoured the abort at once may already have ended its run.
    /// </summary>
    public IReadOnlyList<string> Aborted { get; }

    /// <summary>
    /// Gets the sessions whose runs were force-evicted: by the watchdog while the drain waited, or by the drain
    /// (past their deadline with <see cref="DrainOptions.ForceEvictOverdue"/>, or aborted with a zero grace period).
    /// </summary>
    public IReadOnlyList<string> Evicted { get; }

    /// <summary>Gets the sessions whose runs were still active at the timeout and were left alone.</summary>
    public IReadOnlyList<string> StillRunning { get; }

    /// <summary>Gets a value indicating whether every run ended within the timeout by itself or its owner.</summary>
    public bool IsComplete => Aborted.Count == 0 && Evicted.Count == 0 && StillRunning.Count == 0;

    private static string[] Sessions(IReadOnlyList<DrainedRun> runs, DrainOutcome outcome)
        => [.. runs.Where(r => r.Outcome == outcome).Select(r => r.SessionId)];
}
