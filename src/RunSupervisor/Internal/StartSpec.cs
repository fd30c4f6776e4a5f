namespace RunSupervisor;

/// <summary>A start's options, validated and resolved against the registry's: what the transitions need, in ticks.</summary>
internal readonly struct StartSpec
{
    public StartSpec(long timeoutTicks, long graceTicks, long idleTicks, long queueTimeoutTicks, SessionBusyBehavior whenBusy, bool background, int lane)
    {
        TimeoutTicks = timeoutTicks;
        GraceTicks = graceTicks;
        IdleTicks = idleTicks;
        QueueTimeoutTicks = queueTimeoutTicks;
        WhenBusy = whenBusy;
        Background = background;
        Lane = lane;
    }

    public long TimeoutTicks { get; }

    public long GraceTicks { get; }

    /// <summary>Gets the idle timeout; zero when off.</summary>
    public long IdleTicks { get; }

    public long QueueTimeoutTicks { get; }

    public SessionBusyBehavior WhenBusy { get; }

    public bool Background { get; }

    /// <summary>Gets the lane's index in <see cref="LaneSet"/>; 0 for the default lane.</summary>
    public int Lane { get; }
}
