namespace RunSupervisor;

/// <summary>
/// The registry's single timer. It is only ever asked to fire "no later than" an instant, so concurrent
/// requests cannot push a wake-up back; an early wake-up is harmless because the tick re-reads the queue.
/// </summary>
/// <remarks>
/// <see cref="ITimer.Change(TimeSpan, TimeSpan)"/> is never called under the registry's gate: some time
/// providers (FakeTimeProvider among them) run a due callback synchronously inside <c>Change</c>, and the
/// callback takes the gate.
/// </remarks>
internal sealed class WatchdogTimer : IDisposable
{
    // ITimer accepts at most 0xFFFFFFFE milliseconds; a later instant is reached in several hops.
    private static readonly TimeSpan MaxDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    // System timers round to milliseconds; an early wake-up re-arms no sooner than this.
    private static readonly TimeSpan MinDelay = TimeSpan.FromMilliseconds(1);

    // Below this the system timer cannot tell the difference, so re-arming would only cost a call.
    private static readonly TimeSpan DriftTolerance = TimeSpan.FromMilliseconds(1);

    private readonly Lock _scheduleLock = new();
    private readonly RegistryClock _clock;
    private readonly ITimer _timer;
    private long _scheduledTicks = long.MaxValue;
    private bool _disposed;

    /// <param name="clock">The registry's clock, whose ticks due instants are in.</param>
    /// <param name="callback">The tick.</param>
    /// <param name="state">The tick's state.</param>
    public WatchdogTimer(RegistryClock clock, TimerCallback callback, object state)
    {
        _clock = clock;

        // The timer must not capture the ExecutionContext of whichever run happened to create it.
        bool restoreFlow = !ExecutionContext.IsFlowSuppressed();
        if (restoreFlow)
        {
            ExecutionContext.SuppressFlow();
        }

        try
        {
            // On the system clock the watchdog gets a thread of its own: the system timer runs on the thread pool, which
            // hung providers starve. Any other provider (a fake clock in tests) drives the watchdog through its own timer.
            _timer = ReferenceEquals(clock.TimeProvider, TimeProvider.System)
                ? new DedicatedTimerThread(callback, state, "RunSupervisor watchdog")
                : clock.TimeProvider.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
        finally
        {
            if (restoreFlow)
            {
                ExecutionContext.RestoreFlow();
            }
        }
    }

    /// <summary>Marks the pending wake-up as consumed; called at the start of every tick.</summary>
    /// <returns>The instant the consumed wake-up was armed for, or <see cref="long.MaxValue"/> if none was.</returns>
    public long BeginTick()
    {
        lock (_scheduleLock)
        {
            long scheduled = _scheduledTicks;
            _scheduledTicks = long.MaxValue;
            return scheduled;
        }
    }

    /// <summary>Makes sure the timer fires at or before <paramref name="dueTicks"/> (ticks of the registry's clock).</summary>
    /// <param name="dueTicks">The instant.</param>
    /// <param name="minimumDelay">Whether to wait at least a millisecond: after a timer that fired before the instant it was armed for.</param>
    public void ScheduleNoLaterThan(long dueTicks, bool minimumDelay = false)
    {
        if (dueTicks == long.MaxValue || Volatile.Read(ref _scheduledTicks) <= dueTicks)
        {
            return;
        }

        // Read outside the lock: a TimeProvider may run due callbacks (this timer's tick among them) inside its methods.
        long nowTicks = _clock.NowTicks();
        TimeSpan delay = TimeSpan.FromTicks(Math.Max(0, dueTicks - nowTicks));
        if (minimumDelay && delay < MinDelay)
        {
            delay = MinDelay;
        }

        if (delay > MaxDelay)
        {
            delay = MaxDelay;
            dueTicks = nowTicks + MaxDelay.Ticks;
        }

        lock (_scheduleLock)
        {
            if (_disposed || _scheduledTicks <= dueTicks)
            {
                return;
            }

            // Recorded before Change: a provider that fires synchronously re-enters here (same thread, the
            // lock is re-entrant) and its newer value must win.
            _scheduledTicks = dueTicks;
            _timer.Change(delay, Timeout.InfiniteTimeSpan);

            // The timer counts the delay from when Change ran, not from the reading above: when the clock moved in
            // between (another thread advanced it, or this one was preempted) by more than the timer's resolution,
            // arm it again for what is left, or the wake-up would come that much after the due instant.
            for (int attempt = 0; attempt < 3 && !_disposed && _scheduledTicks == dueTicks; attempt++)
            {
                long laterTicks = _clock.NowTicks();
                TimeSpan rest = TimeSpan.FromTicks(Math.Max(0, dueTicks - laterTicks));
                if (minimumDelay && rest < MinDelay)
                {
                    rest = MinDelay;
                }

                if (delay - rest < DriftTolerance)
                {
                    break;
                }

                delay = rest;
                _timer.Change(delay, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Gets a value indicating whether the watchdog runs on a dedicated thread rather than the provider's timer.</summary>
    public bool IsDedicatedThread => _timer is DedicatedTimerThread;

    public void Dispose()
    {
        lock (_scheduleLock)
        {
            _disposed = true;
            _scheduledTicks = long.MinValue;
            _timer.Dispose();
        }
    }
}
