namespace RunSupervisor;

/// <summary>What happened to one run during a drain.</summary>
public enum DrainOutcome
{
    /// <summary>The run ended within the drain's timeout by itself or its owner (completed, faulted, aborted, timed out, superseded).</summary>
    Drained,

    /// <summary>The drain aborted the run at its timeout; its grace period started then.</summary>
    Aborted,

    /// <summary>The run was force-evicted, by the watchdog during the drain or by the drain itself.</summary>
    Evicted,

    /// <summary>The run was still active at the timeout and was left alone.</summary>
    StillRunning,
}
