namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// A clock moved only by hand, whose timers never fire: what a fake clock's synchronous firing would hide. Its wall
/// clock (starting at the Unix epoch) can also step on its own, as NTP or a resumed machine makes it, while the
/// monotonic clock stays put.
/// </summary>
internal sealed class HandDrivenClock : TimeProvider
{
    private long _monotonicTicks;
    private long _wallOffsetTicks = DateTimeOffset.UnixEpoch.UtcTicks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _monotonicTicks);

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _monotonicTicks) + Interlocked.Read(ref _wallOffsetTicks), TimeSpan.Zero);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new SilentTimer();

    /// <summary>Moves both clocks on.</summary>
    public void Elapse(TimeSpan span) => Interlocked.Add(ref _monotonicTicks, span.Ticks);

    /// <summary>Steps the wall clock alone.</summary>
    public void StepWallClock(TimeSpan step) => Interlocked.Add(ref _wallOffsetTicks, step.Ticks);

    private sealed class SilentTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => true;

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => default;
    }
}
