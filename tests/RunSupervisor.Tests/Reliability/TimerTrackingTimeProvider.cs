using System.Collections.Concurrent;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that knows which of its timers are armed (due to fire), so a test can assert
/// "no timers pending" after a drain. Timers are forgotten when disposed.
/// </summary>
internal sealed class TimerTrackingTimeProvider : FakeTimeProvider
{
    private readonly ConcurrentDictionary<TrackedTimer, byte> _timers = new();

    public TimerTrackingTimeProvider(DateTimeOffset startDateTime)
        : base(startDateTime)
    {
    }

    /// <summary>Gets how many live timers are armed: a due time is set and they have not fired since.</summary>
    public int ArmedTimers => _timers.Keys.Count(t => t.IsArmed);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var tracked = new TrackedTimer(this);
        _timers.TryAdd(tracked, 0);
        tracked.Arm(dueTime, period);
        tracked.Inner = base.CreateTimer(
            s =>
            {
                tracked.Fired();
                callback(s);
            },
            state,
            dueTime,
            period);
        return tracked;
    }

    private sealed class TrackedTimer : ITimer
    {
        private readonly TimerTrackingTimeProvider _owner;
        private int _armed;

        public TrackedTimer(TimerTrackingTimeProvider owner) => _owner = owner;

        public ITimer? Inner { get; set; }

        public bool IsArmed => Volatile.Read(ref _armed) != 0;

        public void Arm(TimeSpan dueTime, TimeSpan period)
            => Volatile.Write(ref _armed, dueTime != Timeout.InfiniteTimeSpan ? 1 : 0);

        public void Fired()
        {
            // A one-shot timer is spent once it fires; FakeTimeProvider treats a zero period like an infinite one.
            Volatile.Write(ref _armed, 0);
        }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            // Armed before the change: FakeTimeProvider may fire a due timer synchronously inside Change.
            Arm(dueTime, period);
            return Inner!.Change(dueTime, period);
        }

        public void Dispose()
        {
            Volatile.Write(ref _armed, 0);
            _owner._timers.TryRemove(this, out _);
            Inner?.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
