using Microsoft.Extensions.Logging;
using RunSupervisor.Leasing;

namespace RunSupervisor;

/// <summary>Sessions other hosts run: watching them for the heartbeat policy, the store's notifications (aborts, supersedes, releases), and the subscription's lifetime.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>Whether another host holds the session's lease (this host's own stale lease, whose release is in flight, is not another's).</summary>
    private async ValueTask<bool> IsHeldElsewhereAsync(string sessionId, CancellationToken cancellationToken)
    {
        RunLeaseInfo? owner = await StoreCallAsync(sessionId, "get_owner", static (store, id, token) => store.GetOwnerAsync(id, token), cancellationToken).ConfigureAwait(false);
        return owner is not null && !string.Equals(owner.HostId, _hostId, StringComparison.Ordinal);
    }

    /// <summary>
    /// Watches a session whose holder elsewhere was learned before <paramref name="releasesHeardBefore"/> was read off
    /// <see cref="ReleasesHeard"/>: a release announced since may have found the session not yet watched, so the store
    /// is asked about this session at once rather than at the next poll.
    /// </summary>
    private void WatchRemote(string sessionId, long releasesHeardBefore)
    {
        WatchRemote(sessionId);
        AskIfReleasedSince(sessionId, releasesHeardBefore);
    }

    /// <summary>
    /// Asks the store about a session just watched if a release was heard since <paramref name="releasesHeardBefore"/>:
    /// that release may have found it not yet watched. Called after the session is watched: a release counted later
    /// finds it watched and reports it itself.
    /// </summary>
    private void AskIfReleasedSince(string sessionId, long releasesHeardBefore)
    {
        if (Volatile.Read(ref _releasesHeard) != releasesHeardBefore)
        {
            _ = CheckWatchedAsync(sessionId);
        }
    }

    /// <summary>Asks the store about one watched session now; idle, it is announced and no longer watched.</summary>
    private async Task CheckWatchedAsync(string sessionId)
    {
        try
        {
            if (!IsDisposed && _watchedRemote!.TryGetValue(sessionId, out long generation)
                && !await IsHeldElsewhereAsync(sessionId, CancellationToken.None).ConfigureAwait(false))
            {
                RemoteSessionIdle(sessionId, generation);
            }
        }
        catch (RunLeaseUnavailableException)
        {
            // Still unknown: the next poll (or the reconnect) asks again.
        }
    }

    /// <summary>
    /// Renews the generation of a watched session before a heartbeat asks the store about it: an idle answer to an
    /// earlier question (a poll in flight) may predate another host taking the session, which the heartbeat's own answer
    /// says, and must not end the watch.
    /// </summary>
    private void RenewWatch(string sessionId)
    {
        if (_watchedRemote is not null && _watchedRemote.TryGetValue(sessionId, out long current))
        {
            _ = _watchedRemote.TryUpdate(sessionId, Interlocked.Increment(ref _watchGeneration), current);
        }
    }

    /// <summary>Gets how many release and reconnect notifications this host has heard: read before asking the store who holds a session.</summary>
    private long ReleasesHeard => Volatile.Read(ref _releasesHeard);

    /// <summary>
    /// Watches a session another host runs, for the heartbeat policy: polled until the store says it is idle. Watching a
    /// session already watched renews its generation, so a store answer to a question asked before can no longer end it.
    /// </summary>
    private void WatchRemote(string sessionId)
    {
        if (_watchedRemote is null)
        {
            return;
        }

        long generation = Interlocked.Increment(ref _watchGeneration);
        while (!_watchedRemote.TryAdd(sessionId, generation))
        {
            if (_watchedRemote.TryGetValue(sessionId, out long current) && _watchedRemote.TryUpdate(sessionId, generation, current))
            {
                return;
            }
        }

        // The release message is what makes the owed heartbeat prompt; the poll only bounds its delay.
        EnsureSubscribed();

        long due = NowTicks() + _remotePollInterval.Ticks;
        if (Interlocked.CompareExchange(ref _nextPollTicks, due, long.MaxValue) == long.MaxValue)
        {
            _watchdog.ScheduleNoLaterThan(due);
        }
    }

    /// <summary>Starts the poll of the watched sessions when due (at most one in flight, never awaited here).</summary>
    private long PollTick(long now)
    {
        long due = Volatile.Read(ref _nextPollTicks);
        if (due == long.MaxValue || now < due)
        {
            return due;
        }

        if (_watchedRemote!.IsEmpty)
        {
            Interlocked.Exchange(ref _nextPollTicks, long.MaxValue);

            // Watched meanwhile: that start saw a pending poll and did not arm one.
            if (!_watchedRemote.IsEmpty && Interlocked.CompareExchange(ref _nextPollTicks, now + _remotePollInterval.Ticks, long.MaxValue) == long.MaxValue)
            {
                return now + _remotePollInterval.Ticks;
            }

            return Volatile.Read(ref _nextPollTicks);
        }

        long next = now + _remotePollInterval.Ticks;
        Volatile.Write(ref _nextPollTicks, next);
        if (Interlocked.CompareExchange(ref _pollInFlight, 1, 0) == 0)
        {
            // This poll answers every request for one made before it starts.
            Volatile.Write(ref _pollAgain, 0);
            _ = PollWatchedAsync();
        }

        return next;
    }

    /// <summary>Asks the store about every watched session; an idle one is announced and no longer watched.</summary>
    private async Task PollWatchedAsync()
    {
        try
        {
            foreach (string sessionId in _watchedRemote!.Keys)
            {
                // Read just before asking, not when the poll began: a heartbeat may have renewed the watch since, and
                // this answer is newer than that.
                if (IsDisposed)
                {
                    return;
                }

                if (!_watchedRemote.TryGetValue(sessionId, out long generation))
                {
                    continue;
                }

                bool elsewhere;
                try
                {
                    elsewhere = await IsHeldElsewhereAsync(sessionId, CancellationToken.None).ConfigureAwait(false);
                }
                catch (RunLeaseUnavailableException)
                {
                    // Still unknown: watched on, and the next poll (or the reconnect) asks again.
                    continue;
                }

                if (!elsewhere)
                {
                    RemoteSessionIdle(sessionId, generation);
                }
            }
        }
        finally
        {
            Interlocked.Exchange(ref _pollInFlight, 0);

            // A poll asked for while this one ran (a reconnect) was not started: it starts now, not a poll interval later.
            // Looked at after the flag is cleared, paired with PollWatchedSoon, which asks and then arms: one of the two
            // starts it.
            if (Volatile.Read(ref _pollAgain) != 0 && !IsDisposed)
            {
                DueNow(ref _nextPollTicks);
            }
        }
    }

    /// <summary>A watched session is idle cluster-wide: the listeners hear it as they hear a local run's end, unless a run or a waiting start here has it now, or a start here waits to take it (whose end they will hear).</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="askedAt">The watch's generation when the store was asked (an answer to a question asked before a later watch or question is stale), or <see langword="null"/> for a release message.</param>
    private void RemoteSessionIdle(string sessionId, long? askedAt = null)
    {
        bool removed = askedAt is { } generation
            ? _watchedRemote!.TryRemove(new KeyValuePair<string, long>(sessionId, generation))
            : _watchedRemote!.TryRemove(sessionId, out _);
        if (!removed)
        {
            return;
        }

        if (_table.Find(sessionId) is null && _table.QueuedCount(sessionId) == 0 && !_remoteWaitList!.HasHeardHeld(sessionId))
        {
            NotifyEndListeners(sessionId, sessionIdle: true);
        }
    }

    /// <summary>Polls the watched sessions at the next watchdog tick (a reconnect may have hidden their release messages).</summary>
    private void PollWatchedSoon()
    {
        if (_watchedRemote is null || _watchedRemote.IsEmpty)
        {
            return;
        }

        Interlocked.Exchange(ref _pollAgain, 1);
        DueNow(ref _nextPollTicks);
    }

    /// <summary>Makes the lease work whose next instant <paramref name="dueTicks"/> holds (a poll, a renew batch) due now, and wakes the watchdog for it.</summary>
    private void DueNow(ref long dueTicks)
    {
        long now = NowTicks();
        Volatile.Write(ref dueTicks, now);
        _watchdog.ScheduleNoLaterThan(now);
    }

    /// <summary>
    /// Subscribes this host to its notifications once, in the background: a start never waits for (or fails for want
    /// of) the subscription, since renew carries abort flags and takeovers and the poll finds releases. A failed
    /// subscription is tried again by the next start.
    /// </summary>
    private void EnsureSubscribed()
    {
        // The attempt is claimed under the lock but made outside it: the store's subscribe call is foreign code.
        TaskCompletionSource attempt;
        lock (_subscriptionLock!)
        {
            if (_subscription is not null && !(_subscription.IsCompleted && _subscriptionHandle is null))
            {
                return;
            }

            attempt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _subscription = attempt.Task;
        }

        SubscribeAsync().ContinueWith(static (_, state) => ((TaskCompletionSource)state!).SetResult(), attempt, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task SubscribeAsync()
    {
        try
        {
            using StoreTimeout timeout = new(_storeTimeout, _clock.TimeProvider, CancellationToken.None);
            IAsyncDisposable handle = await _leaseStore!.SubscribeAsync(_hostId, new LeaseObserver(this), timeout.Token).ConfigureAwait(false);
            StoreSucceeded();
            bool disposed;
            lock (_subscriptionLock!)
            {
                disposed = IsDisposed;
                if (!disposed)
                {
                    _subscriptionHandle = handle;
                }
            }

            if (disposed)
            {
                await DisposeSubscriptionAsync(handle).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // Notifications are an optimisation over renew and poll; a start does not fail for want of them.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            StoreFailed("subscribe");
            _logger.LeaseStoreUnavailable(string.Empty, "subscribe", "aborts and releases from other hosts arrive by renew and poll until it succeeds", ex);
        }
    }

    /// <summary>Waits for the session's release message (<paramref name="released"/>), or the poll interval, whichever comes first.</summary>
    private async Task WaitForRemoteReleaseAsync(Task released, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var delay = new CancellationTokenSource(timeout, _clock.TimeProvider);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), delay);
        try
        {
            await released.WaitAsync(delay.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The poll interval passed (the caller tries again, which also reveals a crashed owner), or the caller
            // cancelled, which it hears with its own token below, not the link between the two.
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    private void OnLeaseNotification(RunLeaseNotification notification)
    {
        switch (notification.Kind)
        {
            case RunLeaseNotificationKind.AbortRequested:
                if (_table.Find(notification.SessionId) is { } aborted && aborted.Lease?.FencingToken == notification.FencingToken)
                {
                    Abort(aborted, notification.Reason ?? "aborted from another host", cancelOnThisThread: false);
                }

                break;
            case RunLeaseNotificationKind.Superseded:
                if (_table.Find(notification.SessionId) is not { } superseded)
                {
                    break;
                }

                RunLeaseInfo newOwner = notification.NewOwner ?? new RunLeaseInfo(notification.SessionId, "unknown", 0);
                if (superseded.Lease?.FencingToken == notification.FencingToken)
                {
                    SupersededRemotely(superseded, newOwner);
                }
                else if (superseded.Lease is null && !superseded.StartPublished)
                {
                    // A start here whose lease's answer has not arrived: its token is not known yet, so the supersede waits
                    // for the answer (Confirm judges it), unless the answer was set meanwhile.
                    var early = new EarlySupersede(superseded, notification.FencingToken, newOwner);
                    _earlySupersedes![notification.SessionId] = early;
                    if (superseded.Lease?.FencingToken == notification.FencingToken
                        && _earlySupersedes.TryRemove(new KeyValuePair<string, EarlySupersede>(notification.SessionId, early)))
                    {
                        SupersededRemotely(superseded, newOwner);
                    }
                }

                break;
            case RunLeaseNotificationKind.Released:
                // Counted before the session is looked up as watched; see WatchRemote(string, long).
                Interlocked.Increment(ref _releasesHeard);
                _remoteWaitList!.WakeHead(notification.SessionId);
                RemoteSessionIdle(notification.SessionId);

                break;
            case RunLeaseNotificationKind.Reconnected:
                // The store says it is reachable again: an idle host has no other call to learn it from.
                StoreSucceeded();
                Interlocked.Increment(ref _releasesHeard);

                // Messages may have been lost meanwhile: every waiter looks again.
                _remoteWaitList!.WakeAllHeads();

                PollWatchedSoon();

                break;
        }
    }

    private void DisposeLeasing()
    {
        if (_remoteWaitList is null)
        {
            return;
        }

        IAsyncDisposable? handle;
        lock (_subscriptionLock!)
        {
            handle = _subscriptionHandle;
            _subscriptionHandle = null;
        }

        if (handle is not null)
        {
            _ = DisposeSubscriptionAsync(handle);
        }

        _ = _remoteWaitList.FailAll(
            static _ => new ObjectDisposedException(nameof(ActiveRunRegistry), "The registry was disposed while the start waited for its session."),
            close: new ObjectDisposedException(nameof(ActiveRunRegistry)));
    }

    private async Task DisposeSubscriptionAsync(IAsyncDisposable handle)
    {
        try
        {
            await handle.DisposeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The registry is going away; an unsubscribe that fails only leaves a subscription the store drops with the connection.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logger.LeaseStoreUnavailable(string.Empty, "unsubscribe", "the subscription ends with the connection", ex);
        }
    }

    /// <summary>The observer the store calls; never throws into the store.</summary>
    private sealed class LeaseObserver(ActiveRunRegistry registry) : IRunLeaseObserver
    {
        public void OnNotification(RunLeaseNotification notification)
        {
            ArgumentNullException.ThrowIfNull(notification);
            if (registry.IsDisposed)
            {
                return;
            }

            try
            {
                registry.OnLeaseNotification(notification);
            }
#pragma warning disable CA1031 // The store's delivery thread must never see the registry's failure.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                registry._logger.LeaseStoreUnavailable(notification.SessionId, "notification", "the notification was dropped", ex);
            }
        }
    }

    /// <summary>A store call's own timeout on the registry's clock, linked to the caller's token.</summary>
    private sealed class StoreTimeout : IDisposable
    {
        private readonly CancellationTokenSource _source;
        private readonly CancellationTokenRegistration _registration;

        public StoreTimeout(TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
        {
            _source = new CancellationTokenSource(timeout, timeProvider);
            _registration = cancellationToken.CanBeCanceled
                ? cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source)
                : default;
        }

        public CancellationToken Token => _source.Token;

        public void Dispose()
        {
            _registration.Dispose();
            _source.Dispose();
        }
    }
}
