using System.Runtime.InteropServices;

namespace RunSupervisor;

/// <summary>A start's options, validated and resolved against the registry's: what the transitions need, in ticks.</summary>
/// <remarks>
/// Every waiting start carries a copy, so the layout is kept tight: automatic layout puts the four tick counts first, and
/// the lane, the flag and the busy behaviour (a byte, not the enum's int) share the 8 bytes after them (48 bytes in
/// declaration order with an int for the behaviour, 40 this way).
/// </remarks>
[StructLayout(LayoutKind.Auto)]
internal readonly struct StartSpec
{
    private readonly byte _whenBusy;

    public StartSpec(long timeoutTicks, long graceTicks, long idleTicks, long queueTimeoutTicks, SessionBusyBehavior whenBusy, bool background, int lane)
    {
        TimeoutTicks = timeoutTicks;
        GraceTicks = graceTicks;
        IdleTicks = idleTicks;
        QueueTimeoutTicks = queueTimeoutTicks;
        Lane = lane;
        Background = background;
        _whenBusy = (byte)whenBusy;
    }

    public long TimeoutTicks { get; }

    public long GraceTicks { get; }

    /// <summary>Gets the idle timeout; zero when off.</summary>
    public long IdleTicks { get; }

    public long QueueTimeoutTicks { get; }

    /// <summary>Gets the lane's index in <see cref="LaneSet"/>; 0 for the default lane.</summary>
    public int Lane { get; }

    public bool Background { get; }

    public SessionBusyBehavior WhenBusy => (SessionBusyBehavior)_whenBusy;
}
