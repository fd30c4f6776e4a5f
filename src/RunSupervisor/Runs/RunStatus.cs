namespace RunSupervisor;

/// <summary>
/// The state of a run as seen through its <see cref="RunHandle"/>.
/// </summary>
public enum RunStatus
{
    /// <summary>The run owns its session and its abort token is not cancelled.</summary>
    Running,

    /// <summary>The run still owns its session, but its abort token has been cancelled (deadline or explicit abort); it is waiting to settle within its grace period.</summary>
    Aborting,

    /// <summary>The run has left the registry for any reason other than a force eviction.</summary>
    Ended,

    /// <summary>The run was force-evicted: it no longer owns its session, although its provider may still be running.</summary>
    Evicted,
}
