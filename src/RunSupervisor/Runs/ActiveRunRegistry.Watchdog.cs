using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>The watchdog's tick: abort at the deadline, evict at the fixed eviction instant, and say how late it ran.</summary>
public sealed partial class ActiveRunRegistry
{
    private long _lastLatenessTicks;

    /// <summary>
    /// Gets how late the watchdog handled the due work of its most recent tick that had any: the largest gap between
    /// an abort's or eviction's due instant and the moment it happened. Zero until the first such tick.
    /// </summary>
    /// <remarks>
    /// A late tick never gives a run extra grace: an eviction instant is fixed when the abort happens. Lateness beyond
    /// <see cref="RunSupervisorOptions.WatchdogLatenessThreshold"/> is logged as a warning (event 16,
    /// <c>WatchdogLate</c>); every abort and eviction records <c>runsupervisor.watchdog.lateness</c>. Health checks
    /// compare this value with the threshold.
    /// </remarks>
    public TimeSpan WatchdogLateness => TimeSpan.FromTicks(Volatile.Read(ref _lastLatenessTicks));

    /// <summary>Gets the lateness beyond which the watchdog warns, as the registry was created with.</summary>
    public TimeSpan WatchdogLatenessThreshold => _latenessThreshold;

    /// <summary>Gets a value indicating whether the watchdog runs on a thread of its own (with <see cref="TimeProvider.System"/>).</summary>
    internal bool WatchdogHasDedicatedThread => _watchdog.IsDedicatedThread;

    private void OnWatchdogTick()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        long armedFor = _watchdog.BeginTick();
        List<(RunEntry Entry, long DueTicks)>? timedOut = null;
        List<(Left Left, long DueTicks)>? evicted = null;
        long now = NowTicks();
        long next;
        SettledStarts settled;
        using (_table.EnterGate())
        {
            _table.CollectDueLocked(now, ref timedOut, ref evicted);
            next = _table.NextDueTicksLocked;
            settled = _table.TakeSettledLocked();
        }

        long lateness = 0;
        int count = 0;
        if (timedOut is not null)
        {
            foreach ((RunEntry entry, long due) in timedOut)
            {
                lateness = Math.Max(lateness, RecordLateness(now - due));
                count++;
                if (entry.AbortCause == AbortCause.Idle)
                {
                    _logger.RunStalled(entry.SessionId, entry.RunId, TimeSpan.FromTicks(entry.IdleTicks), entry.ToWallClock(entry.EvictAtTicks));
                }
                else
                {
                    _logger.RunTimedOut(entry.SessionId, entry.RunId, entry.Age(now), entry.ToWallClock(entry.EvictAtTicks));
                }

                CancelOffThisThread(entry);
            }
        }

        if (evicted is not null)
        {
            foreach ((Left left, long due) in evicted)
            {
                lateness = Math.Max(lateness, RecordLateness(now - due));
                count++;
                Publish(left);
            }
        }

        // Waiting starts admitted into what the evictions freed, or timed out, after the ends that freed it.
        PublishSettled(settled);
        if (count > 0)
        {
            Volatile.Write(ref _lastLatenessTicks, lateness);
            if (lateness > _latenessThreshold.Ticks)
            {
                _logger.WatchdogLate(TimeSpan.FromTicks(lateness), count);
            }
        }

        next = Math.Min(next, LeaseTick(now));

        // A timer that fired before the instant it was armed for rounds to milliseconds (the system timer does);
        // re-arming it for less than a millisecond would spin until the due instant.
        _watchdog.ScheduleNoLaterThan(next, minimumDelay: armedFor != long.MaxValue && now < armedFor);
    }

    private long RecordLateness(long latenessTicks)
    {
        Metrics.RecordWatchdogLateness(TimeSpan.FromTicks(latenessTicks));
        return latenessTicks;
    }
}
