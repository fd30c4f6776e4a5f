using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>Everything that follows a transition, outside the gate: abort tokens, logs, metrics, activities, events, completion.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>Publishes a run's start (and the end of the run it superseded).</summary>
    /// <remarks>
    /// A leased run's own start is published only once its lease is held (<see cref="RunEntry.StartPublished"/>); until
    /// then only the end of the run it superseded is, and the watchdog is armed for its deadline all the same.
    /// </remarks>
    private void PublishStart(RunEntry entry, Left superseded, PendingStart? admittedFrom = null)
    {
        if (entry.StartPublished)
        {
            StartActivity(entry, admittedFrom);
            Metrics.RecordStarted();
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                _logger.RunStarted(entry.SessionId, entry.RunId, entry.Deadline);
            }
        }

        if (superseded.HasLeft)
        {
            // A superseded start that never held its lease never appeared, so nothing says it was replaced.
            if (!superseded.Quiet && superseded.Entry.Background && !entry.Background)
            {
                Metrics.RecordPreempted();
                _logger.RunPreempted(entry.SessionId, superseded.Entry.RunId, entry.RunId);
            }
            else if (!superseded.Quiet)
            {
                _logger.RunSuperseded(entry.SessionId, superseded.Entry.RunId, entry.RunId);
            }

            Publish(superseded);
        }

        _watchdog.ScheduleNoLaterThan(entry.DueTicks);
    }

    /// <summary>
    /// The one publishing step after a run left the table: abort token (off this thread), detail, logs, metrics,
    /// activity, <see cref="RunEnded"/>, internal listeners (so <c>HeartbeatOwed</c> follows <c>RunEnded</c>), the end
    /// observer, then <see cref="RunHandle.Completion"/>.
    /// </summary>
    private void Publish(Left left, bool morePublishing = false)
    {
        Debug.Assert(left.HasLeft, "Only a run that left is published.");
        RunEntry entry = left.Entry;
        if (left.Cancel)
        {
            CancelOffThisThread(entry);
        }

        if (left.Quiet)
        {
            // A leased start withdrawn before its lease was held: it never appeared as a run, so it leaves no trace. Idle
            // here says nothing of the cluster (another host may hold the session, or the store could not say: an outage,
            // a cancelled acquire), so heartbeats dropped meanwhile are owed once the store says the session is idle.
            if (entry.WithdrawnHeldElsewhere || left.SessionIdle)
            {
                WatchRemote(entry.SessionId);
            }
            else
            {
                NotifyEndListeners(entry.SessionId, sessionIdle: false);
            }

            entry.Complete();
            return;
        }

        if (entry.Lease is { } lease && !entry.LeaseForfeited)
        {
            ReleaseLease(lease);
        }

        string? detail = entry.Detail;
        RunEndReason reason = entry.EndReason;
        TimeSpan duration = TimeSpan.FromTicks(entry.EndedAtTicks - entry.StartedAtTicks);
        if (reason == RunEndReason.ForceEvicted)
        {
            _logger.RunForceEvicted(entry.SessionId, entry.RunId, duration, detail!);
        }

        if (left.Forgotten is { } forgotten)
        {
            _logger.AbandonedRunForgotten(forgotten.SessionId, forgotten.RunId, _maxAbandonedRuns);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            _logger.RunEnded(entry.SessionId, entry.RunId, reason, duration, detail ?? "completed");
        }

        Metrics.RecordEnded(reason, duration);
        StopActivity(entry, detail);
        if (entry.Abandoned && left.Forgotten is null)
        {
            // A full ledger swapped its oldest entry for this one: the count did not change.
            Metrics.RecordAbandoned(1);
        }

        if (RunEnded is { } handlers)
        {
            var args = new RunEndedEventArgs(entry.SessionId, entry.RunId, reason, duration, detail, entry.ToWallClock(entry.EndedAtTicks), entry.FencingToken);
            Callbacks.Raise(handlers, this, args, nameof(RunEnded), entry.SessionId, _logger);
        }

        if (left.SessionIdle && entry.LeaseForfeited)
        {
            // Superseded or taken over by another host, or its lease gone from the store: idle here says nothing of the
            // cluster, so heartbeats dropped meanwhile are owed once the store says the session is idle.
            WatchRemote(entry.SessionId);
            NotifyEndListeners(entry.SessionId, sessionIdle: false);
        }
        else
        {
            NotifyEndListeners(entry.SessionId, left.SessionIdle);
        }

        entry.EndObserver?.OnRunEnded(entry, morePublishing);
        entry.Complete();
    }

    /// <summary>Tells the internal listeners (the heartbeat policy) that a run or a waiting start left the session.</summary>
    private void NotifyEndListeners(string sessionId, bool sessionIdle)
    {
        foreach (IRunEndListener listener in Volatile.Read(ref _endListeners))
        {
            Callbacks.Invoke(listener, sessionId, sessionIdle, _logger);
        }
    }

    /// <summary>Publishes a run's end, then the waiting starts its leaving admitted (or that gave up meanwhile).</summary>
    private void Publish(Left left, SettledStarts settled)
    {
        if (left.HasLeft)
        {
            Publish(left, morePublishing: !settled.IsEmpty);
        }

        PublishSettled(settled);
    }

    /// <summary>Starts the run's activity, outside the lock (listeners are foreign code); no-op when nobody listens.</summary>
    private void StartActivity(RunEntry entry, PendingStart? admittedFrom)
    {
        if (!entry.Traced)
        {
            return;
        }

        // A run admitted from the queue is started on whichever thread freed its slot: its parent is the activity its
        // caller had when it queued, never that thread's.
        Activity? activity = Callbacks.Guard(
            static x => x.From is null
                ? RunSupervisorActivitySource.StartRun(x.Entry.SessionId, x.Entry.RunId, x.Entry.StartedAt)
                : RunSupervisorActivitySource.StartRun(x.Entry.SessionId, x.Entry.RunId, x.Entry.StartedAt, x.From.TraceParent),
            (Entry: entry, From: admittedFrom),
            Callbacks.ActivityListener,
            entry.SessionId,
            _logger);
        if (activity is not null)
        {
            entry.SetActivity(activity);

            // The run may have ended (superseded, disposed) on another thread before the activity was handed over;
            // its Publish then found none to stop. TakeActivity makes sure exactly one side stops it.
            if (entry.HasEnded)
            {
                StopActivity(entry, entry.Detail);
            }
        }
    }

    /// <summary>Stops the run's activity, if it has one not yet stopped; outside the lock.</summary>
    private void StopActivity(RunEntry entry, string? detail)
    {
        if (!entry.Traced || entry.TakeActivity() is not { } activity)
        {
            return;
        }

        Callbacks.Guard(
            static s =>
            {
                RunSupervisorActivitySource.StopRun(s.Activity, s.Entry.EndReason, s.Detail, s.Entry.ToWallClock(s.Entry.EndedAtTicks));
                return true;
            },
            (Activity: activity, Entry: entry, Detail: detail),
            Callbacks.ActivityListener,
            entry.SessionId,
            _logger);
    }

    /// <summary>Cancels the abort token on this thread: only for an explicit abort, whose caller expects .NET's convention.</summary>
    private void CancelOnThisThread(RunEntry entry)
    {
        try
        {
            entry.Cancel();
        }
#pragma warning disable CA1031 // The provider's cancellation callbacks are foreign code; their failure is logged, never thrown at the caller who aborted.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logger.AbortCallbackFailed(entry.SessionId, entry.RunId, Unwrap(ex));
        }
    }

    /// <summary>
    /// Cancels the abort token with its callbacks on the thread pool. The registry's own paths (watchdog, eviction,
    /// supersede, disposal, drain) never run provider code on their thread and never wait for it: a callback that
    /// blocks must not stall every other session's abort and eviction.
    /// </summary>
    private void CancelOffThisThread(RunEntry entry)
    {
        // CancelAsync marks the token cancelled at once and runs the callbacks on the pool; its task carries their errors.
        Task callbacks = entry.CancelAsync();
        if (callbacks.IsCompleted)
        {
            ObserveAbortCallbacks(callbacks, entry);
            return;
        }

        callbacks.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(() => ObserveAbortCallbacks(callbacks, entry));
    }

    private void ObserveAbortCallbacks(Task callbacks, RunEntry entry)
    {
        if (callbacks.Exception is { } error)
        {
            _logger.AbortCallbackFailed(entry.SessionId, entry.RunId, Unwrap(error));
        }
    }

    /// <summary>The callback's own exception when there is one: cancellation wraps callback failures in aggregates.</summary>
    private static Exception Unwrap(Exception error)
    {
        if (error is not AggregateException aggregate)
        {
            return error;
        }

        AggregateException flat = aggregate.Flatten();
        return flat.InnerExceptions.Count == 1 ? flat.InnerExceptions[0] : flat;
    }
}
