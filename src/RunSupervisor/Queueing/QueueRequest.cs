namespace RunSupervisor;

/// <summary>An incoming message or heartbeat tick, as <see cref="HeartbeatQueuePolicy.Resolve(in QueueRequest)"/> sees it.</summary>
/// <param name="SessionId">The session it is for.</param>
/// <param name="IsHeartbeat">Whether it is a periodic heartbeat tick rather than a user message.</param>
/// <param name="Mode">The session's queue mode.</param>
/// <param name="HasQueuedFollowups">Whether follow-ups are already queued for the session.</param>
/// <param name="ResetTriggered">Whether it is a reset (for example <c>/new</c>).</param>
/// <param name="ShouldFollowup">Whether the host wants it handled as a follow-up whatever the mode.</param>
public readonly record struct QueueRequest(
    string SessionId,
    bool IsHeartbeat,
    QueueMode Mode = QueueMode.Followup,
    bool HasQueuedFollowups = false,
    bool ResetTriggered = false,
    bool ShouldFollowup = false);
