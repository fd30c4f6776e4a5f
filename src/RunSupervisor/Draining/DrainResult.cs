namespace RunSupervisor;

/// <summary>
/// What a drain did. Each session id that was active when the drain started appears in exactly one list.
/// </summary>
public sealed class DrainResult
{
    internal DrainResult(IReadOnlyList<string> drained, IReadOnlyList<string> aborted, IReadOnlyList<string> evicted, IReadOnlyList<string> stillRunning)
    {
        Drained = drained;
        Aborted = aborted;
        Evicted = evicted;
        StillRunning = stillRunning;
    }

    /// <summary>Gets the sessions whose runs ended within the drain's timeout.</summary>
    public IReadOnlyList<string> Drained { get; }

    /// <summary>
    /// Gets the sessions whose runs the drain aborted at its timeout. Their grace period started then; a provider
    /// that honoured the abort at once may already have ended its run.
    /// </summary>
    public IReadOnlyList<string> Aborted { get; }

    /// <summary>
    /// Gets the sessions whose runs the drain force-evicted: past their deadline with
    /// <see cref="DrainOptions.ForceEvictOverdue"/>, or aborted with a zero grace period.
    /// </summary>
    public IReadOnlyList<string> Evicted { get; }

    /// <summary>Gets the sessions whose runs were still active at the timeout and were left alone.</summary>
    public IReadOnlyList<string> StillRunning { get; }

    /// <summary>Gets a value indicating whether every run ended within the timeout.</summary>
    public bool IsComplete => Aborted.Count == 0 && Evicted.Count == 0 && StillRunning.Count == 0;
}
