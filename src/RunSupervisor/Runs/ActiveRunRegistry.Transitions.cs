namespace RunSupervisor;

/// <summary>The transitions a handle (or its provider task) asks for: each reads the clock, runs the table's transition under the gate, and publishes.</summary>
public sealed partial class ActiveRunRegistry
{
    internal void Attach(RunEntry entry, Task providerTask)
    {
        using (_table.EnterGate())
        {
            _table.AttachLocked(entry, providerTask);
        }

        if (providerTask.IsCompleted)
        {
            OnProviderSettled(entry, providerTask);
            return;
        }

        // Synchronously, whatever the settling thread's SynchronizationContext: the run ends as its provider settles.
        providerTask.ContinueWith(
            static (task, state) => { var e = (RunEntry)state!; e.Owner.OnProviderSettled(e, task); },
            entry,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    internal void OnProviderSettled(RunEntry entry, Task providerTask)
    {
        // Observed first, whatever happens next: an abandoned provider's fault never becomes an unobserved task exception.
        AggregateException? fault = providerTask.Exception;
        Left left;
        SettledStarts settled;
        AbandonedRunInfo? abandoned = null;
        long now = NowTicks();
        using (_table.EnterGate())
        {
            left = _table.LeaveLocked(entry, EndTrigger.ProviderSettled, now);
            if (!left.HasLeft)
            {
                abandoned = _table.ForgetAbandonedLocked(entry.RunId);
            }

            settled = _table.TakeSettledLocked();
        }

        Publish(left, settled);
        if (abandoned is not null)
        {
            LogAbandonedRunSettled(abandoned, providerTask.Status.ToString(), fault);
        }
    }

    internal void Release(RunEntry entry)
    {
        Left left;
        SettledStarts settled;
        AbandonedRunInfo? abandoned = null;
        long now = NowTicks();
        using (_table.EnterGate())
        {
            bool firstRelease = _table.MarkReleasedLocked(entry);
            left = _table.LeaveLocked(entry, EndTrigger.Released, now);

            // Without an attached task, the owner's release is the only sign that an abandoned run has settled.
            if (!left.HasLeft && firstRelease && entry.ProviderTask is null)
            {
                abandoned = _table.ForgetAbandonedLocked(entry.RunId);
            }

            settled = _table.TakeSettledLocked();
        }

        if (left.HasLeft)
        {
            Publish(left, settled);
            return;
        }

        _logger.StaleReleaseIgnored(entry.SessionId, entry.RunId, entry.Status);
        if (abandoned is not null)
        {
            LogAbandonedRunSettled(abandoned, "released", fault: null);
        }
    }

    /// <summary>
    /// Begins an abort. An explicit one (a handle's or <see cref="TryAbort(string, long?, string?)"/>) runs the token's
    /// callbacks on the caller's thread, as <see cref="CancellationTokenSource.Cancel()"/> does; the registry's own
    /// (a drain's) runs them on the thread pool.
    /// </summary>
    internal bool Abort(RunEntry entry, string reason, bool cancelOnThisThread = true)
    {
        long now = NowTicks();
        using (_table.EnterGate())
        {
            if (!_table.BeginAbortLocked(entry, AbortCause.Caller, reason, now))
            {
                return false;
            }
        }

        _logger.RunAborted(entry.SessionId, entry.RunId, reason);

        // With a grace period the watchdog is told of the eviction instant before the callbacks run: a callback that
        // blocks this thread (a hung provider's) must not hold back the eviction at abort + grace. A zero grace period
        // evicts once the callbacks have run here, so that they run on the caller's thread before the eviction, as an
        // explicit abort promises, and a provider that honours the token inside one ends Aborted, not ForceEvicted.
        bool zeroGrace = entry.EvictAtTicks <= now;
        if (!zeroGrace)
        {
            _watchdog.ScheduleNoLaterThan(entry.EvictAtTicks);
        }

        if (cancelOnThisThread)
        {
            CancelOnThisThread(entry);
        }
        else
        {
            CancelOffThisThread(entry);
        }

        if (zeroGrace)
        {
            ForceEvict(entry, reason);
        }

        return true;
    }

    internal bool TryExtendDeadline(RunEntry entry, TimeSpan extension)
    {
        long now = NowTicks();
        using (_table.EnterGate())
        {
            return _table.ExtendLocked(entry, extension.Ticks, entry.StartedAtTicks + _maxRunDuration.Ticks, now);
        }
    }

    /// <summary>Force-evicts <paramref name="entry"/> if it is still current; for drains and zero grace periods.</summary>
    /// <param name="entry">The run.</param>
    /// <param name="reason">The abort text, when the run was still running (a drain evicting an overdue run).</param>
    internal bool ForceEvict(RunEntry entry, string reason)
    {
        Left left;
        SettledStarts settled;
        long now = NowTicks();
        using (_table.EnterGate())
        {
            // A run evicted without having been aborted is aborted by the eviction itself: the detail says by whom.
            _table.BeginAbortLocked(entry, AbortCause.Caller, reason, now);
            left = _table.LeaveLocked(entry, EndTrigger.Evicted, now);
            settled = _table.TakeSettledLocked();
        }

        Publish(left, settled);

        return left.HasLeft;
    }

    private void LogAbandonedRunSettled(AbandonedRunInfo abandoned, string outcome, Exception? fault)
    {
        Metrics.RecordAbandoned(-1);
        TimeSpan lateness = _clock.TimeProvider.GetUtcNow() - abandoned.EvictedAt;
        _logger.AbandonedRunSettled(abandoned.SessionId, abandoned.RunId, outcome, lateness, fault);
    }
}
