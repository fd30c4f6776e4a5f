using System.Collections.Concurrent;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that knows which of its timers are armed (due to fire), so a test can assert
/// "no timers pending" after a drain, and counts how often they fired (each firing of a registry's timer is a watchdog
/// tick). Timers are forgotten when disposed.
/// </summary>
internal sealed class TimerTrackingTimeProvider : FakeTimeProvider
{
    private readonly ConcurrentDictionary<TrackedTimer, byte> _timers = new();
    private int _firings;

    public TimerTrackingTimeProvider(DateTimeOffset startDateTime)
        : base(startDateTime)
    {
    }

    /// <summary>Gets how many times any of this clock's timers has fired.</summary>
    public int Firings => Volatile.Read(ref _firings);

    /// <summary>Gets how many live timers are armed: a due time is set and they have not fired since.</summary>
    public int ArmedTimers => _timers.Keys.Count(t => t.IsArmed);

    /// <summary>
    /// Gets the earliest instant an armed timer is due at, from the clock's reading when it was armed (a diagnosis for a
    /// failed check, not exact while another thread moves the clock), or <see langword="null"/> when none is armed.
    /// </summary>
    public DateTimeOffset? EarliestArmedDue
        => _timers.Keys.Where(t => t.IsArmed).Select(t => (long?)t.DueTicks).Min() is long ticks
            ? new DateTimeOffset(ticks, TimeSpan.Zero)
            : null;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var tracked = new TrackedTimer(this);
        _timers.TryAdd(tracked, 0);
        tracked.Arm(dueTime, period);
        tracked.Inner = base.CreateTimer(
            s =>
            {
                tracked.Fired();
                Interlocked.Increment(ref _firings);
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
        private long _dueTicks;

        public TrackedTimer(TimerTrackingTimeProvider owner) => _owner = owner;

        public ITimer? Inner { get; set; }

        public bool IsArmed => Volatile.Read(ref _armed) != 0;

        public long DueTicks => Volatile.Read(ref _dueTicks);

        public void Arm(TimeSpan dueTime, TimeSpan period)
        {
            // GetTimestamp is FakeTimeProvider's UTC ticks, read without running due timers (GetUtcNow would run them).
            if (dueTime != Timeout.InfiniteTimeSpan)
            {
                Volatile.Write(ref _dueTicks, _owner.GetTimestamp() + dueTime.Ticks);
            }

            Volatile.Write(ref _armed, dueTime != Timeout.InfiniteTimeSpan ? 1 : 0);
        }

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
