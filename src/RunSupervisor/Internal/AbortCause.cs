namespace RunSupervisor;

/// <summary>Why a run is aborting: decides whether a settle within the grace period ends it Aborted, TimedOut or Stalled.</summary>
internal enum AbortCause : byte
{
    /// <summary>Not aborting.</summary>
    None,

    /// <summary><see cref="RunHandle.Abort(string?)"/>, <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>, a caller's token or a drain.</summary>
    Caller,

    /// <summary>The watchdog, at the deadline.</summary>
    Deadline,

    /// <summary>The watchdog, when the run made no progress for its idle timeout.</summary>
    Idle,
}
