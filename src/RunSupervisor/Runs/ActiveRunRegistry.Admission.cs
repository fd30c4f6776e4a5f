using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>Waiting starts: queued, cancelled by their caller, admitted or failed, and published outside the gate.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>The lane name logs and metrics use for starts without a lane.</summary>
    private const string DefaultLaneName = "default";

    /// <summary>Gets the number of starts waiting for admission on the session (for the session itself, or for a lane or global slot).</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns>The count; takes no lock.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public int GetQueuedCount(string sessionId)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        return _table.QueuedCount(sessionId) + (_remoteWaitList?.CountWaiting(sessionId) ?? 0);
    }

    /// <summary>Gets, for each lane (the default lane first, then the configured ones), how many starts wait and since when the oldest has.</summary>
    /// <returns>One entry per lane, lanes with no waiting start included.</returns>
    /// <remarks>Takes the registry's lock for a copy; meant for health checks and diagnostics, not for the hot path.</remarks>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public IReadOnlyList<LaneQueueInfo> GetQueueSnapshot()
    {
        ThrowIfDisposed();
        string?[] names = _table.Lanes.Names;
        int[] waiting = new int[names.Length];
        long[] oldest = new long[names.Length];
        Array.Fill(oldest, long.MaxValue);
        using (_table.EnterGate())
        {
            foreach (PendingStart start in _table.GetWaitingLocked())
            {
                int lane = start.Spec.Lane;
                waiting[lane]++;
                oldest[lane] = Math.Min(oldest[lane], start.EnqueuedTicks);
            }
        }

        var lanes = new LaneQueueInfo[names.Length];
        for (int i = 0; i < lanes.Length; i++)
        {
            lanes[i] = new LaneQueueInfo(names[i], waiting[i], oldest[i] == long.MaxValue ? null : _clock.ToWallClock(oldest[i]));
        }

        return lanes;
    }

    /// <summary>Converts a monotonic instant to wall-clock ticks without calling the time provider; safe under the gate.</summary>
    internal long ToWallClockUtcTicksCached(long nowTicks) => _clock.ToWallClockUtcTicksCached(nowTicks);

    /// <summary>The caller's token fired while the start waited: it leaves the queue and never runs.</summary>
    private void CancelWaiting(PendingStart waiter, CancellationToken cancellationToken)
    {
        long now = NowTicks();
        SettledStarts settled;
        using (_table.EnterGate())
        {
            _table.CancelWaitingLocked(waiter, new OperationCanceledException("The start was cancelled while it waited for admission; it never ran.", cancellationToken), now);
            settled = _table.TakeSettledLocked();
        }

        PublishSettled(settled);
    }

    private void PublishQueued(PendingStart waiter, CancellationToken cancellationToken)
    {
        string lane = _table.Lanes.Names[waiter.Spec.Lane] ?? DefaultLaneName;
        Metrics.RecordQueued(lane);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            _logger.RunQueued(waiter.SessionId, lane, _table.QueuedCount(waiter.SessionId));
        }

        if (cancellationToken.CanBeCanceled)
        {
            // The callback is handed the token, so the waiting start need not keep it.
            waiter.Registration = cancellationToken.UnsafeRegister(static (state, token) => { var w = (PendingStart)state!; w.Owner.CancelWaiting(w, token); }, waiter);

            // Admitted (or failed) on another thread before the registration was stored: that thread's Complete may have
            // read no registration, so this one unregisters. Completing the task comes before Complete reads the
            // registration, and the fence here before this read, so one of the two sees the other.
            Interlocked.MemoryBarrier();
            if (waiter.Task.IsCompleted)
            {
                waiter.Registration.Unregister();
            }
        }

        _watchdog.ScheduleNoLaterThan(waiter.TimeoutAtTicks);
    }

    /// <summary>Completes the starts that left the queue in a transition: admitted ones are published as starts first.</summary>
    private void PublishSettled(SettledStarts settled)
    {
        foreach (PendingStart waiter in settled)
        {
            string lane = _table.Lanes.Names[waiter.Spec.Lane] ?? DefaultLaneName;
            TimeSpan waited = TimeSpan.FromTicks(waiter.LeftAtTicks - waiter.EnqueuedTicks);
            string outcome = waiter.Failure switch
            {
                null => "admitted",
                RunQueueTimeoutException => "timed_out",
                RunQueueFullException => "queue_full",
                ObjectDisposedException => "disposed",
                _ => "cancelled",
            };
            Metrics.RecordLeftQueue(lane, waited, outcome);
            if (waiter.Admitted is { } entry)
            {
                PublishStart(entry, settled.ReplacedBy(waiter), admittedFrom: waiter);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    _logger.RunAdmitted(entry.SessionId, entry.RunId, lane, waited);
                }
            }
            else
            {
                switch (waiter.Failure)
                {
                    case RunQueueTimeoutException:
                        _logger.QueueTimedOut(waiter.SessionId, lane, waited);
                        break;
                    case RunQueueFullException full:
                        _logger.QueueFull(waiter.SessionId, lane, full.Limit);
                        break;
                }

                if (waiter.LeftSessionIdle)
                {
                    NotifyEndListeners(waiter.SessionId, sessionIdle: true);
                }
            }

            waiter.Complete();
        }
    }
}
