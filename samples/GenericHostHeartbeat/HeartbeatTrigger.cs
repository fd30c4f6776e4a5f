namespace GenericHostHeartbeat;

/// <summary>
/// One reason to deliver a heartbeat: a regular tick of the timer, or the owed tick the policy asks for when a session
/// that dropped heartbeats is idle again. Both go through one queue, so one loop delivers them in order.
/// </summary>
/// <param name="TickNumber">The tick's number (1-based) for a regular tick; 0 for an owed one.</param>
/// <param name="OwedFor">How many heartbeats were dropped, for an owed tick; 0 for a regular one.</param>
internal readonly record struct HeartbeatTrigger(int TickNumber, int OwedFor)
{
    /// <summary>Gets a value indicating whether this is the owed tick rather than a regular one.</summary>
    public bool IsOwed => OwedFor > 0;

    /// <summary>Gets the name the log uses for it: <c>#3</c> or <c>owed</c>.</summary>
    public string Label => IsOwed ? "owed" : $"#{TickNumber}";

    /// <summary>A regular tick.</summary>
    public static HeartbeatTrigger Tick(int number) => new(number, 0);

    /// <summary>The owed tick after <paramref name="dropped"/> drops.</summary>
    public static HeartbeatTrigger Owed(int dropped) => new(0, Math.Max(1, dropped));
}
