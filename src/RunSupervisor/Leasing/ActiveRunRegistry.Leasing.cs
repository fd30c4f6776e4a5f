using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using RunSupervisor.Leasing;

namespace RunSupervisor;

/// <summary>
/// Admission across hosts through an <see cref="IRunLeaseStore"/>: a start is entered locally (which settles every
/// local race and keeps local waiting first in, first out), then takes the session's lease, and only then is published.
/// The watchdog renews every lease in one batch, ends a run whose lease cannot be confirmed in time, and the store's
/// notifications carry aborts, supersedes and releases between hosts.
/// </summary>
public sealed partial class ActiveRunRegistry
{
    private readonly IRunLeaseStore? _leaseStore;
    private readonly string _hostId;
    private readonly TimeSpan _leaseTtl;
    private readonly TimeSpan _renewInterval;
    private readonly TimeSpan _leaseSafetyMargin;

    // How long after the send of its last confirmed acquire or renew a lease is trusted: the time to live less the safety
    // margin, which is at least the resolution of the registry's clock: a reading may lag the instant it is taken at by
    // up to that much, so the run's end, read off the clock, may come that much after send + validity.
    private readonly long _leaseValidTicks;

    // Release and reconnect notifications heard so far; see WatchRemote(string, long).
    private long _releasesHeard;
    private readonly TimeSpan _storeTimeout;
    private readonly TimeSpan _remotePollInterval;
    private readonly bool _failOpen;

    // Created only with a store: a registry without one allocates nothing for leasing.
    private readonly RemoteWaitList? _remoteWaitList;
    private readonly Lock? _subscriptionLock;
    // The watched sessions, each with the generation of its latest watch or question: an answer to a question asked
    // before a later one (a poll's, older than a heartbeat's) cannot end the watch.
    private readonly ConcurrentDictionary<string, long>? _watchedRemote;
    private long _watchGeneration;

    // Supersedes from another host that arrived while this host's start for the session still waited for its lease's
    // answer (its token unknown here yet): judged when the answer comes. Keyed by session; at most one start per session
    // waits for its lease at a time.
    private readonly ConcurrentDictionary<string, EarlySupersede>? _earlySupersedes;
    private long _nextPollTicks = long.MaxValue;
    private int _storeFailing;
    private long _lastStoreFailureTicks = long.MinValue;
    private long _leasesLost;
    private long _unfencedStarts;
    private int _pollInFlight;

    // Set when a poll is asked for at once (a reconnect); cleared as a poll starts. A poll in flight then starts another as it ends.
    private int _pollAgain;
    private Task? _subscription;
    private IAsyncDisposable? _subscriptionHandle;
    private long _nextRenewTicks = long.MaxValue;

    // Counts confirmed leases: a renew tick that found no leased run, and so stops renewing, looks at it afterwards to
    // learn whether a lease was confirmed while it looked (and found renewing still armed, so left it).
    private long _leasesConfirmed;
    private int _renewInFlight;

    // Set when a renew batch came due while another was in flight; cleared as a batch is sent. The batch in flight then
    // has the next one sent as it answers.
    private int _renewAgain;

    /// <summary>Gets a value indicating whether the registry admits runs through a lease store.</summary>
    internal bool HasLeaseStore => _leaseStore is not null;

    /// <summary>Gets this registry's host id in the lease store (generated unless <see cref="RunLeaseOptions.HostId"/> is set).</summary>
    internal string HostId => _hostId;

    /// <summary>
    /// Aborts the session's run wherever it runs: on this host as <see cref="TryAbort(string, long?, string?)"/> does
    /// (its abort-token callbacks run on this thread), otherwise, with a lease store, by asking the owning host through
    /// the store (a token-checked abort flag its next renew reads, and a message to that host).
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="expectedFencingToken">The run the caller means, by its <see cref="RunInfo.FencingToken"/>; when given and the session's run has another token, nothing happens.</param>
    /// <param name="reason">Why: the end's <see cref="RunEndedEventArgs.Detail"/> on the owning host.</param>
    /// <param name="cancellationToken">Cancels the store call.</param>
    /// <returns><see langword="true"/> if a run was aborted here, or the owning host was asked to.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">The run is not on this host and the store did not answer within <see cref="RunLeaseOptions.AcquireTimeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<bool> TryAbortAsync(string sessionId, long? expectedFencingToken = null, string? reason = null, CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        // A local start still waiting for its lease is not the session's run: the run, if any, is the holder's.
        if (_table.Find(sessionId) is { StartPublished: true } entry && (expectedFencingToken is not long expected || entry.FencingToken == expected))
        {
            return new ValueTask<bool>(Abort(entry, reason ?? RunEnds.RegistryAbortText));
        }

        if (_leaseStore is null)
        {
            return new ValueTask<bool>(false);
        }

        return RequestRemoteAbortAsync(sessionId, expectedFencingToken, reason, cancellationToken);
    }

    /// <summary>Reads who runs the session: this host's run, or, with a lease store, whichever host holds the session's lease.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="cancellationToken">Cancels the store call.</param>
    /// <returns>The owner, or <see langword="null"/> when the session is idle (cluster-wide, with a store).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store did not answer within <see cref="RunLeaseOptions.AcquireTimeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<RunLeaseInfo?> GetSessionOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (_leaseStore is null)
        {
            return new ValueTask<RunLeaseInfo?>(_table.Find(sessionId) is { } entry ? new RunLeaseInfo(sessionId, _hostId, entry.FencingToken) : null);
        }

        return StoreCallAsync(sessionId, "get_owner", static (store, id, token) => store.GetOwnerAsync(id, token), cancellationToken);
    }

    /// <summary>Reads how the lease store is doing: reachable or not, when it last failed, how many leases were lost. Lock-free.</summary>
    /// <returns>A snapshot; <see cref="RunLeaseHealth.HasStore"/> is <see langword="false"/> for a registry without a store.</returns>
    /// <remarks>Readable after disposal.</remarks>
    public RunLeaseHealth GetLeaseHealth()
    {
        if (_leaseStore is null)
        {
            return new RunLeaseHealth(hasStore: false, isStoreAvailable: true, lastStoreFailureAt: null, leasesLost: 0, unfencedStarts: 0);
        }

        long failedAt = Volatile.Read(ref _lastStoreFailureTicks);
        return new RunLeaseHealth(
            hasStore: true,
            isStoreAvailable: Volatile.Read(ref _storeFailing) == 0,
            lastStoreFailureAt: failedAt == long.MinValue ? null : _clock.ToWallClock(failedAt),
            leasesLost: Interlocked.Read(ref _leasesLost),
            unfencedStarts: Interlocked.Read(ref _unfencedStarts));
    }

    private void StoreSucceeded()
    {
        if (Volatile.Read(ref _storeFailing) != 0)
        {
            Volatile.Write(ref _storeFailing, 0);
        }
    }

    private void StoreFailed(string operation)
    {
        Volatile.Write(ref _lastStoreFailureTicks, NowTicks());
        Volatile.Write(ref _storeFailing, 1);
        Metrics.RecordLeaseStoreFailure(operation);
    }

    private static string NewHostId() => string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}");

    private async ValueTask<bool> RequestRemoteAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken)
        => await StoreCallAsync(sessionId, "abort", (store, id, token) => store.RequestAbortAsync(id, expectedFencingToken, reason, token), cancellationToken).ConfigureAwait(false);

    /// <summary>One store call with the store timeout; any failure but the caller's cancellation is "unavailable".</summary>
    private async ValueTask<T> StoreCallAsync<T>(string sessionId, string operation, Func<IRunLeaseStore, string, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        using StoreTimeout timeout = new(_storeTimeout, _clock.TimeProvider, cancellationToken);
        try
        {
            T result = await call(_leaseStore!, sessionId, timeout.Token).ConfigureAwait(false);
            StoreSucceeded();
            return result;
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            // The caller hears its own token, not the store timeout's link to it.
            throw new OperationCanceledException(ex.Message, ex, cancellationToken);
        }
#pragma warning disable CA1031 // Whatever the store throws (or a timeout) means the same to the caller: it is unreachable.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            StoreFailed(operation);
            throw new RunLeaseUnavailableException(sessionId, ex);
        }
    }

    /// <summary>
    /// The start of a registry with a lease store: enter locally (waiting locally as the options say), take the lease,
    /// publish. A session held by another host is refused (<see cref="SessionBusyException"/> naming it), or, with
    /// <see cref="SessionBusyBehavior.Wait"/>, waited for until its release message or the next poll, within the queue
    /// timeout, behind this host's older starts for the session (<see cref="RemoteWaitList"/>).
    /// </summary>
    private async ValueTask<RunHandle> StartLeasedAsync(string sessionId, RunStartOptions? options, IRunEndObserver? observer, CancellationToken cancellationToken)
    {
        StartSpec spec = options is null ? _defaultSpec : ResolveStartOptions(options);
        long begun = NowTicks();
        long waitUntil = spec.QueueTimeoutTicks > long.MaxValue - begun ? long.MaxValue : begun + spec.QueueTimeoutTicks;
        EnsureSubscribed();
        RemoteWaiter? waiter = spec.WhenBusy == SessionBusyBehavior.Wait ? JoinRemoteWait(sessionId, spec) : null;
        RunStartOptions? attempt = options;
        bool requeued = false;

        // Release notifications heard before the store was last asked: one heard since may have found the session not
        // yet watched when this start withdraws or gives up (see WatchRemote(string, long)).
        long releasesHeard = ReleasesHeard;
        try
        {
            while (true)
            {
                if (waiter is not null)
                {
                    ObjectDisposedException.ThrowIf(IsDisposed, this);
                    if (await WaitForTurnAsync(waiter, spec, begun, waitUntil, cancellationToken).ConfigureAwait(false) || requeued)
                    {
                        attempt = WithQueueTimeout(options, TimeSpan.FromTicks(Math.Max(0, waitUntil - NowTicks())));
                    }
                }

                // Behind this host's own runs and starts the local queue decides, as without a store.
                RunHandle handle = await StartLocalAsync(sessionId, attempt, observer, cancellationToken).ConfigureAwait(false);
                RunEntry entry = handle.Entry;

                // In the line before the store is asked, and armed: a release announced between its "held" answer and the
                // wait below must still wake this start, not leave it to the next poll.
                Task? released = null;
                if (waiter is not null)
                {
                    if (!_remoteWaitList!.JoinTrying(waiter))
                    {
                        // Older starts of this host wait in line for another host's release: this one waits behind them
                        // (first in, first out), not ahead of them by the local queue's turn. It has waited: its next local
                        // try gets only what is left of its queue timeout.
                        Withdraw(entry, "older starts of this host wait for the session");
                        requeued = true;
                        continue;
                    }

                    if (waiter.Failure is { } failure)
                    {
                        // A drain cancelled the waiting starts before this one entered here (it fails the line before it
                        // lists the runs it waits for): it does not run after the drain, which reports it cancelled if it
                        // listed its entry (if this start entered after the listing, the drain never saw it).
                        entry.WithdrawnByDrain = true;
                        Withdraw(entry, "the registry is draining");
                        throw failure;
                    }

                    released = _remoteWaitList.ArmForTry(waiter);
                }

                releasesHeard = ReleasesHeard;
                long sent = NowTicks();
                RunLeaseAcquireResult result;
                try
                {
                    // A background start never supersedes another host's run: the store does not say whether that run is
                    // a background one, and background work must never end a user's turn.
                    result = await AcquireAsync(entry, spec.WhenBusy == SessionBusyBehavior.Supersede && !spec.Background, cancellationToken).ConfigureAwait(false);
                    if (result.Lease is { } late && NowTicks() - sent >= _leaseValidTicks)
                    {
                        // The answer came after the lease's validity here: the store may already have let it lapse and
                        // granted it to another host, so it is never trusted. Treated as a store that did not answer.
                        ReleaseLease(late);
                        throw new TimeoutException("The lease store's answer came after the lease's validity had passed.");
                    }
                }
                catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
                {
                    Withdraw(entry, "the caller cancelled while the lease was being taken");
                    throw new OperationCanceledException(ex.Message, ex, cancellationToken);
                }
#pragma warning disable CA1031 // Whatever the store throws (or a timeout) means the same here: it is unreachable.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    StoreFailed("acquire");
                    if (_failOpen)
                    {
                        _logger.LeaseStoreUnavailable(sessionId, "acquire", "the run starts unfenced (FailOpen)", ex);
                        Confirm(entry, lease: null, sent);
                        Metrics.RecordUnfencedStart();
                        Interlocked.Increment(ref _unfencedStarts);
                        _logger.UnfencedStart(sessionId, entry.RunId);
                        return handle;
                    }

                    _logger.LeaseStoreUnavailable(sessionId, "acquire", "the start fails (FailClosed)", ex);
                    Withdraw(entry, "the lease store was unavailable");
                    throw new RunLeaseUnavailableException(sessionId, ex);
                }

                StoreSucceeded();
                if (result.Lease is { } lease)
                {
                    Confirm(entry, lease, sent);
                    return handle;
                }

                RunLeaseInfo owner = result.Owner!;
                _logger.LeaseHeldElsewhere(sessionId, owner.HostId, owner.FencingToken);

                // Waiting again, and marked so before the withdrawal starts watching the session, so its release is never
                // news to the listeners while this start is about to take it.
                if (waiter is not null)
                {
                    _remoteWaitList!.EndTry(waiter);
                }

                entry.WithdrawnHeldElsewhere = true;
                Withdraw(entry, "the session is held by another host");
                AskIfReleasedSince(sessionId, releasesHeard);
                if (waiter is null)
                {
                    throw new SessionBusyException(sessionId, 0, owner.FencingToken, owner.HostId);
                }

                // Disposed while the acquire was in flight: the disposal failed the starts waiting then, not this one.
                ObjectDisposedException.ThrowIf(IsDisposed, this);
                long now = NowTicks();
                if (now >= waitUntil)
                {
                    throw new RunQueueTimeoutException(sessionId, _table.Lanes.Names[spec.Lane], TimeSpan.FromTicks(now - begun));
                }

                TimeSpan remaining = _clock.Wait(waitUntil - now);
                await WaitForRemoteReleaseAsync(released!, remaining < _remotePollInterval ? remaining : _remotePollInterval, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (RunQueueTimeoutException ex) when (waiter is not null)
        {
            // A try that timed out in the local queue after waiting in the line waited only its own part: the caller
            // waited from the start.
            throw new RunQueueTimeoutException(sessionId, ex.Lane, TimeSpan.FromTicks(NowTicks() - begun));
        }
        finally
        {
            if (waiter is not null)
            {
                StopWaitingRemotely(waiter, releasesHeard);
            }
        }
    }

    /// <summary>Puts a waiting start in its session's <see cref="RemoteWaitList"/>, within the session's queue limit.</summary>
    /// <exception cref="RunQueueFullException">The session's queue is full and the overflow behaviour refuses the newest start.</exception>
    private RemoteWaiter JoinRemoteWait(string sessionId, in StartSpec spec)
    {
        string? lane = _table.Lanes.Names[spec.Lane];
        int limit = _table.MaxQueuedPerSession;
        RemoteWaiter? waiter = _remoteWaitList!.Join(
            sessionId,
            _table.QueuedCount(sessionId),
            limit,
            _table.QueueOverflow == QueueOverflowBehavior.CancelOldest,
            w => RunQueueFullException.SessionQueueFull(w.SessionId, lane, limit, pushedOut: true));
        return waiter ?? throw RunQueueFullException.SessionQueueFull(sessionId, lane, limit, pushedOut: false);
    }

    /// <summary>Waits until the start is its session's oldest here (at once if it is), within its queue timeout.</summary>
    /// <returns><see langword="true"/> if it waited or tried before, so the queue timeout left for the local part is shorter than its own.</returns>
    private async ValueTask<bool> WaitForTurnAsync(RemoteWaiter waiter, StartSpec spec, long begun, long waitUntil, CancellationToken cancellationToken)
    {
        bool waited = waiter.HeardHeld;
        while (!_remoteWaitList!.Arm(waiter, out Task turn))
        {
            waited = true;
            long now = NowTicks();
            if (now >= waitUntil)
            {
                throw new RunQueueTimeoutException(waiter.SessionId, _table.Lanes.Names[spec.Lane], TimeSpan.FromTicks(now - begun));
            }

            try
            {
                await turn.WaitAsync(_clock.Wait(waitUntil - now), _clock.TimeProvider, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Its queue timeout: the next look says so.
            }
        }

        return waited;
    }

    /// <summary>
    /// A start that waited here has the session now, or gave up: the next one's turn comes. If it gave up, the session is
    /// watched again: heartbeats dropped while it waited are owed once the store says the session is idle.
    /// </summary>
    private void StopWaitingRemotely(RemoteWaiter waiter, long releasesHeardBefore)
    {
        _remoteWaitList!.Leave(waiter);
        if (_table.Find(waiter.SessionId) is null)
        {
            // Heartbeats dropped while it waited (as queued) are owed once the store says the session is idle.
            WatchRemote(waiter.SessionId, releasesHeardBefore);
        }
    }

    private static RunStartOptions WithQueueTimeout(RunStartOptions? options, TimeSpan queueTimeout) => new()
    {
        Timeout = options?.Timeout,
        GracePeriod = options?.GracePeriod,
        WhenBusy = options?.WhenBusy ?? SessionBusyBehavior.Reject,
        QueueTimeout = queueTimeout,
        IdleTimeout = options?.IdleTimeout,
        Background = options?.Background ?? false,
        Lane = options?.Lane,
    };

    /// <summary>Takes the lease for a locally entered run. A lease this very host still holds for the session is stale (its run has left): it is taken over.</summary>
    private async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunEntry entry, bool supersede, CancellationToken cancellationToken)
    {
        using StoreTimeout timeout = new(_storeTimeout, _clock.TimeProvider, cancellationToken);
        RunLeaseAcquireResult result = await _leaseStore!.AcquireAsync(new RunLeaseRequest(entry.SessionId, _hostId, _leaseTtl, supersede), timeout.Token).ConfigureAwait(false);
        if (!result.IsAcquired && result.Owner!.HostId == _hostId && IsCurrent(entry))
        {
            // The entry holds the session locally, so no run of this host can hold its lease: the release is in flight.
            result = await _leaseStore.AcquireAsync(new RunLeaseRequest(entry.SessionId, _hostId, _leaseTtl, supersede: true), timeout.Token).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>Moves the next batched renew to <paramref name="dueTicks"/> if it is later (or not armed), never later.</summary>
    private void RenewNoLaterThan(long dueTicks)
    {
        long current = Volatile.Read(ref _nextRenewTicks);
        while (dueTicks < current)
        {
            long seen = Interlocked.CompareExchange(ref _nextRenewTicks, dueTicks, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    /// <summary>Gets how long after the send of its last confirmed acquire or renew a lease of this registry is trusted.</summary>
    internal TimeSpan LeaseValidity => TimeSpan.FromTicks(_leaseValidTicks);

    /// <summary>Publishes a leased run's start once its lease is held (or, failing open, without one).</summary>
    /// <exception cref="SessionBusyException">A newer local start superseded the run while its lease was taken.</exception>
    /// <exception cref="ObjectDisposedException">The registry was disposed meanwhile.</exception>
    private void Confirm(RunEntry entry, RunLease? lease, long sentTicks)
    {
        long validUntil = lease is null ? long.MaxValue : sentTicks + _leaseValidTicks;
        bool confirmed;
        using (_table.EnterGate())
        {
            confirmed = _table.ConfirmStartLocked(entry, lease, validUntil);
        }

        if (!confirmed)
        {
            _ = TakeEarlySupersede(entry);
            // The run left (a newer local start superseded it, the registry was disposed) while its lease was taken:
            // it never began, so nothing holds the lease now and the caller learns who has the session instead.
            if (lease is not null)
            {
                ReleaseLease(lease);
            }

            ThrowIfDisposed();
            RunEntry? current = _table.Find(entry.SessionId);
            throw new SessionBusyException(entry.SessionId, current?.RunId ?? 0, current?.FencingToken ?? 0, ownerHostId: null);
        }

        if (lease is not null)
        {
            Metrics.RecordLeaseAcquired();
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                _logger.LeaseAcquired(entry.SessionId, entry.RunId, _hostId, lease.FencingToken);
            }

            // Counted before renewing is armed: a tick that stops renewing after this count cannot miss this lease (it
            // looks at the count after it stops), and one that stopped before it is seen here (renewing is disarmed).
            Interlocked.Increment(ref _leasesConfirmed);

            // One interval after the acquire's send, as the validity counts from it: an answer that took longer than an
            // interval is renewed at the next tick, not an interval after it arrived, when its validity may have ended.
            RenewNoLaterThan(sentTicks + _renewInterval.Ticks);
        }

        PublishStart(entry, superseded: default);
        if (lease is not null)
        {
            _watchdog.ScheduleNoLaterThan(Math.Min(validUntil, Volatile.Read(ref _nextRenewTicks)));

            // Another host superseded this very lease before its answer arrived here: the run began and was replaced.
            // Looked at after the lease is set (under the gate), as the notification looks at the lease after recording
            // itself, so one of the two sees the other and the removal decides which acts.
            if (TakeEarlySupersede(entry) is { } early && early.FencingToken == lease.FencingToken)
            {
                SupersededRemotely(entry, early.NewOwner);
            }
        }
    }

    /// <summary>Takes the supersede recorded for <paramref name="entry"/> before its lease's answer came, if any; at most one caller gets it.</summary>
    private EarlySupersede? TakeEarlySupersede(RunEntry entry)
        => _earlySupersedes!.TryGetValue(entry.SessionId, out EarlySupersede? early) && ReferenceEquals(early.Entry, entry)
            && _earlySupersedes.TryRemove(new KeyValuePair<string, EarlySupersede>(entry.SessionId, early))
            ? early
            : null;

    /// <summary>A supersede from another host for a start here whose lease's answer had not arrived yet.</summary>
    private sealed record EarlySupersede(RunEntry Entry, long FencingToken, RunLeaseInfo NewOwner);

    /// <summary>Takes a leased start that did not get its lease back out of the table: it never appeared as a run.</summary>
    private void Withdraw(RunEntry entry, string detail)
    {
        _ = TakeEarlySupersede(entry);

        Left left = Leave(entry, EndTrigger.Withdrawn, detail, forfeitLease: false, out SettledStarts settled);
        Publish(left, settled);
    }

    /// <summary>Takes a leased run out of the table with <paramref name="detail"/>; one whose lease is no longer its own is not released later.</summary>
    private Left Leave(RunEntry entry, EndTrigger trigger, string detail, bool forfeitLease, out SettledStarts settled)
    {
        long now = NowTicks();
        Left left;
        using (_table.EnterGate())
        {
            left = _table.LeaveLocked(entry, trigger, now, detail: detail);
            if (left.HasLeft && forfeitLease)
            {
                // The lease is another host's now, or nobody's: releasing it would be a stale write.
                entry.LeaseForfeited = true;
            }

            settled = _table.TakeSettledLocked();
        }

        return left;
    }

    /// <summary>Ends a run whose lease is gone: at once, with no grace period, for the session may already be another host's.</summary>
    /// <param name="entry">The run.</param>
    /// <param name="cause">The metric's cause tag: <c>expired</c> (no renew confirmed within the local validity), <c>missing</c> or <c>taken_over</c>.</param>
    /// <param name="detail">The end's detail.</param>
    private void LoseLease(RunEntry entry, string cause, string detail)
    {
        // A lease that only ran out here (its renews went unanswered) may still be held in the store, and would keep
        // every other host out until its time to live lapses: it is released, which the store does only while the
        // lease still carries this run's token. A lease the store says is gone or another's is left alone.
        bool mayStillBeHeld = cause == "expired";
        Left left = Leave(entry, EndTrigger.LeaseLost, detail, forfeitLease: !mayStillBeHeld, out SettledStarts settled);
        if (left.HasLeft && !left.Quiet)
        {
            Metrics.RecordLeaseLost(cause);
            Interlocked.Increment(ref _leasesLost);
            _logger.LeaseLost(entry.SessionId, entry.RunId, entry.FencingToken, detail);
        }

        Publish(left, settled);
    }

    /// <summary>Ends this host's run that another host superseded through the store.</summary>
    private void SupersededRemotely(RunEntry entry, RunLeaseInfo newOwner)
    {
        string detail = string.Create(CultureInfo.InvariantCulture, $"superseded by host '{newOwner.HostId}' (fencing token {newOwner.FencingToken})");
        Left left = Leave(entry, EndTrigger.Superseded, detail, forfeitLease: true, out SettledStarts settled);
        if (left.HasLeft && !left.Quiet)
        {
            Metrics.RecordLeaseLost("superseded");
            Interlocked.Increment(ref _leasesLost);
            _logger.RemoteSupersede(entry.SessionId, entry.RunId, newOwner.HostId, newOwner.FencingToken);
        }

        Publish(left, settled);
    }

    /// <summary>Releases a lease in the background: its run has left, and nothing waits for the store.</summary>
    private void ReleaseLease(RunLease lease) => _ = ReleaseLeaseAsync(lease);

    private async Task ReleaseLeaseAsync(RunLease lease)
    {
        try
        {
            using StoreTimeout timeout = new(_storeTimeout, _clock.TimeProvider, CancellationToken.None);
            await _leaseStore!.ReleaseAsync(lease, timeout.Token).ConfigureAwait(false);
            StoreSucceeded();
        }
#pragma warning disable CA1031 // A release that fails is recovered by the lease's time to live; nothing can be done here but note it.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            StoreFailed("release");
            _logger.LeaseReleaseFailed(lease.SessionId, lease.FencingToken, ex);
        }
    }
}
