namespace RunSupervisor;

/// <summary>The one party a run's end is handed to directly (a supervised invocation, or a supervised stream's enumerator), instead of through a completion source.</summary>
internal interface IRunEndObserver
{
    /// <summary>The run has ended and its end is published; called once, outside any lock, before <see cref="RunHandle.Completion"/> completes.</summary>
    /// <param name="entry">The run.</param>
    /// <param name="morePublishing">
    /// <see langword="true"/> when this thread goes on to publish what the run's leaving set off (the waiting starts it
    /// admitted, and the runs those replaced, with their own <see cref="ActiveRunRegistry.RunEnded"/> handlers): an observer
    /// must then not leave its own caller waiting until this thread is done.
    /// </param>
    void OnRunEnded(RunEntry entry, bool morePublishing);
}
