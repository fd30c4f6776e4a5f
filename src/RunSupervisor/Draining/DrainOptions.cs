namespace RunSupervisor;

/// <summary>
/// What <see cref="ActiveRunRegistry.DrainAsync(TimeSpan, DrainOptions?, CancellationToken)"/> does with the
/// runs that are still active when its timeout elapses.
/// </summary>
public sealed class DrainOptions
{
    /// <summary>Gets a value indicating whether runs still active at the timeout are aborted (their grace period starts then).</summary>
    public bool AbortRemaining { get; init; }

    /// <summary>Gets a value indicating whether runs still active at the timeout and already past their deadline are force-evicted at once.</summary>
    public bool ForceEvictOverdue { get; init; }

    /// <summary>
    /// Gets a value indicating whether the starts waiting for admission when the drain begins are failed at once with
    /// <see cref="OperationCanceledException"/> (their work never runs), so the runs that end during the drain admit no
    /// new ones. A host that is shutting down wants this; <see cref="DrainResult.CancelledStarts"/> lists them.
    /// </summary>
    public bool CancelWaiting { get; init; }
}
