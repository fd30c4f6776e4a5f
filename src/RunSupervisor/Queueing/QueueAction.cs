namespace RunSupervisor;

/// <summary>What the host should do with an incoming message or heartbeat tick.</summary>
public enum QueueAction
{
    /// <summary>Start a run for it now (for an interrupt, abort the current run first).</summary>
    RunNow,

    /// <summary>Queue it as a follow-up (or steer it into the active run, per the queue mode).</summary>
    Enqueue,

    /// <summary>Drop it. Only heartbeats are dropped, and every drop is logged, counted and remembered as owed.</summary>
    Drop,
}
