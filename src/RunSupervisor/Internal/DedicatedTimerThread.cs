using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// A one-shot timer on a thread of its own, for the watchdog on <see cref="TimeProvider.System"/>. Hung providers
/// starve the thread pool, and the system timer's callbacks run on the pool: on its own thread the watchdog aborts and
/// evicts on time however many pool threads are blocked.
/// </summary>
/// <remarks>
/// The thread is a background thread (it never keeps the process alive) and sleeps on a monitor between wake-ups, so it
/// costs nothing while idle. <see cref="Change(TimeSpan, TimeSpan)"/> only records the due instant and wakes the thread;
/// the callback runs on the thread, outside the timer's lock, never concurrently with itself. Due instants are counted on
/// the system tick (<see cref="Environment.TickCount64"/>), the clock the registry reads on <see cref="TimeProvider.System"/>:
/// when the timer fires, the registry's clock has reached the instant it was armed for, never a tick short of it.
/// </remarks>
internal sealed class DedicatedTimerThread : ITimer
{
    // A monitor, not a Lock: the thread sleeps on it with Monitor.Wait, and Change wakes it with Monitor.PulseAll.
    private readonly object _lock = new();
    private readonly TimerCallback _callback;
    private readonly object? _state;
    private readonly Thread _thread;
    // Environment.TickCount64 milliseconds.
    private long _dueTickCount = long.MaxValue;
    private bool _disposed;

    public DedicatedTimerThread(TimerCallback callback, object? state, string name)
    {
        _callback = callback;
        _state = state;

        // Not the caller's ExecutionContext: the watchdog must not carry whichever run's ambient state created it.
        _thread = new Thread(static s => ((DedicatedTimerThread)s!).Loop(), maxStackSize: 256 * 1024)
        {
            IsBackground = true,
            Name = name,
        };
        _thread.UnsafeStart(this);
    }

    /// <summary>Arms the timer to fire once after <paramref name="dueTime"/>; <see cref="Timeout.InfiniteTimeSpan"/> disarms it. Periods are not supported.</summary>
    public bool Change(TimeSpan dueTime, TimeSpan period)
    {
        Debug.Assert(period == Timeout.InfiniteTimeSpan, "The watchdog's timer is one-shot.");
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }

            // Rounded up to whole milliseconds: a wake-up may come late by less than one, never early.
            _dueTickCount = dueTime == Timeout.InfiniteTimeSpan
                ? long.MaxValue
                : Environment.TickCount64 + (long)Math.Ceiling(dueTime.TotalMilliseconds);
            Monitor.PulseAll(_lock);
            return true;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            Monitor.PulseAll(_lock);
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    private void Loop()
    {
        while (WaitUntilDue())
        {
            _callback(_state);
        }
    }

    /// <summary>Sleeps until the armed instant; returns <see langword="false"/> once disposed.</summary>
    private bool WaitUntilDue()
    {
        lock (_lock)
        {
            while (!_disposed)
            {
                long due = _dueTickCount;
                if (due == long.MaxValue)
                {
                    Monitor.Wait(_lock);
                    continue;
                }

                long remaining = due - Environment.TickCount64;
                if (remaining <= 0)
                {
                    _dueTickCount = long.MaxValue;
                    return true;
                }

                // Waking a little late is harmless (the tick handles everything due); waking early only re-waits.
                Monitor.Wait(_lock, (int)Math.Min(remaining, int.MaxValue - 1));
            }

            return false;
        }
    }
}
