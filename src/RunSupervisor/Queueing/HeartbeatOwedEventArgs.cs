namespace RunSupervisor;

/// <summary>Data for <see cref="HeartbeatQueuePolicy.HeartbeatOwed"/>: a session that dropped heartbeats is idle again.</summary>
public sealed class HeartbeatOwedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="HeartbeatOwedEventArgs"/> class.</summary>
    /// <param name="sessionId">The session that is idle again.</param>
    /// <param name="droppedHeartbeats">How many heartbeats it dropped since it was last idle.</param>
    public HeartbeatOwedEventArgs(string sessionId, int droppedHeartbeats)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        SessionId = sessionId;
        DroppedHeartbeats = droppedHeartbeats;
    }

    /// <summary>Gets the session that is idle again.</summary>
    public string SessionId { get; }

    /// <summary>Gets how many heartbeats the session dropped since it was last idle.</summary>
    public int DroppedHeartbeats { get; }
}
