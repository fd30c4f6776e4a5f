namespace RunSupervisor;

/// <summary>The one party a run's end is handed to directly (a supervised invocation, or a supervised stream's enumerator), instead of through a completion source.</summary>
internal interface IRunEndObserver
{
    /// <summary>The run has ended and its end is published; called once, outside any lock, before <see cref="RunHandle.Completion"/> completes.</summary>
    /// <param name="entry">The run.</param>
    void OnRunEnded(RunEntry entry);
}
