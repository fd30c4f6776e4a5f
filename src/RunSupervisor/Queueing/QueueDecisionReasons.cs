namespace RunSupervisor;

/// <summary>The reasons <see cref="HeartbeatQueuePolicy"/> gives, one per row of its decision table. Stable: hosts may match on them.</summary>
public static class QueueDecisionReasons
{
    /// <summary>The session is idle and nothing is queued: run now.</summary>
    public const string Idle = "session idle";

    /// <summary>A heartbeat arrived while a run is active: dropped, counted and owed.</summary>
    public const string HeartbeatWhileBusy = "heartbeat while a run is active";

    /// <summary>A heartbeat arrived while follow-ups are queued: dropped, counted and owed.</summary>
    public const string HeartbeatWhileQueued = "heartbeat while follow-ups are queued";

    /// <summary>A heartbeat arrived while another host runs the session (through the lease store): dropped, counted and owed.</summary>
    public const string HeartbeatWhileRemote = "heartbeat while a run is active on another host";

    /// <summary>A heartbeat arrived while the lease store could not say who runs the session, and the registry fails closed: dropped, counted and owed.</summary>
    public const string HeartbeatWhileStoreUnavailable = "heartbeat while the lease store is unavailable";

    /// <summary>A reset runs now.</summary>
    public const string Reset = "reset";

    /// <summary>The host asked for a follow-up.</summary>
    public const string Followup = "follow-up requested";

    /// <summary>The queue mode steers, queues or collects.</summary>
    public const string QueueMode = "queue mode enqueues";

    /// <summary>Interrupt mode: run now, the host aborts the current run.</summary>
    public const string Interrupt = "interrupt";
}
