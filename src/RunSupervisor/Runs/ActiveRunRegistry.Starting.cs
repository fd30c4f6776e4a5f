using System.Diagnostics;

namespace RunSupervisor;

/// <summary>How a start is validated, entered (or queued) and published: the one path behind Start, TryStart, StartAsync and RunAsync.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>
    /// Validates, enters the run, publishes. When the run cannot enter, a start that may wait is queued (or fails at
    /// once, with a zero queue timeout or a full session queue); the refusal says which.
    /// </summary>
    private RunEntry? StartCore(string sessionId, RunStartOptions? options, IRunEndObserver? observer, bool mayWait, CancellationToken cancellationToken, out StartRefusal refusal)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (!mayWait && _leaseStore is not null)
        {
            throw new InvalidOperationException("This registry has a lease store: a start must wait for the store's answer. Use StartAsync (or RunAsync) instead of Start and TryStart.");
        }

        StartSpec spec = options is null ? _defaultSpec : ResolveStartOptions(options);

        // The synchronous starts never wait: to them, Wait is Reject.
        SessionBusyBehavior whenBusy = !mayWait && spec.WhenBusy == SessionBusyBehavior.Wait ? SessionBusyBehavior.Reject : spec.WhenBusy;

        // A busy session is refused without allocating; the answer is confirmed under the lock.
        int sessionHash = SessionTable.Hash(sessionId);
        RunEntry? current = null;
        bool busy = IsBusyFor(sessionId, sessionHash, whenBusy, spec.Background, out current);
        if (busy && whenBusy == SessionBusyBehavior.Reject)
        {
            refusal = new StartRefusal(new EnterResult(EnterOutcome.Busy, current, default, 0), spec, waiter: null, failure: null);
            return null;
        }

        // Built before the lock so the lock is held only for the transition (the run id is assigned under it); not for a
        // start that will wait for its busy session: its run is made when it is admitted.
        long now = NowTicks();
        RunEntry? entry = busy ? null : NewEntry(sessionId, sessionHash, now, _clock.ToWallClock(now).UtcTicks, spec, observer);
        EnterResult result;
        PendingStart? waiter = null;
        Exception? failure = null;
        SettledStarts settled;
        using (_table.EnterGate())
        {
            ThrowIfDisposed();
            result = entry is null && IsBusyFor(sessionId, sessionHash, whenBusy, spec.Background, out current)
                ? new EnterResult(EnterOutcome.Busy, current, default, 0)
                : _table.EnterLocked(entry ??= NewEntry(sessionId, sessionHash, now, _clock.ToWallClockUtcTicksCached(now), spec, observer), whenBusy, now);
            if (!result.Entered && mayWait && (result.Outcome == EnterOutcome.Full || whenBusy == SessionBusyBehavior.Wait))
            {
                if (spec.QueueTimeoutTicks == 0)
                {
                    failure = new RunQueueTimeoutException(sessionId, _table.Lanes.Names[spec.Lane], TimeSpan.Zero);
                }
                else
                {
                    // Queued in the same step that found no room, so the transition that makes room cannot be missed.
                    // The caller's activity, if anyone listens: the run's activity is made at admission, on whichever
                    // thread frees the slot, and must still be this caller's child.
                    Activity? traceParent = RunSupervisorActivitySource.Source.HasListeners() ? Activity.Current : null;
                    waiter = new PendingStart(this, sessionId, sessionHash, spec, observer, now, traceParent);
                    failure = _table.EnqueueLocked(waiter, now);
                    if (failure is not null)
                    {
                        waiter = null;
                    }
                }
            }

            settled = _table.TakeSettledLocked();
        }

        if (result.Entered)
        {
            PublishStart(entry!, result.Superseded);
        }

        if (waiter is not null)
        {
            PublishQueued(waiter, cancellationToken);
        }
        else if (failure is RunQueueFullException full)
        {
            _logger.QueueFull(sessionId, full.Lane ?? DefaultLaneName, full.Limit);
        }

        PublishSettled(settled);
        refusal = new StartRefusal(result, spec, waiter, failure);
        return result.Entered ? entry : null;
    }

    /// <summary>Whether the session has a run that the start would not replace (<see cref="RunTable.Replaces(SessionBusyBehavior, bool, RunEntry)"/>); lock-free, and exact under the gate.</summary>
    private bool IsBusyFor(string sessionId, int sessionHash, SessionBusyBehavior whenBusy, bool background, out RunEntry? current)
    {
        current = _table.Find(sessionId, sessionHash);
        return current is not null && !RunTable.Replaces(whenBusy, background, current);
    }

    /// <summary>
    /// Makes a start's run, for a start entering now or a waiting start being admitted; under the gate,
    /// <paramref name="nowUtcTicks"/> comes from the cached wall-clock offset, which never calls the time provider.
    /// </summary>
    internal RunEntry NewEntry(string sessionId, int sessionHash, long nowTicks, long nowUtcTicks, in StartSpec spec, IRunEndObserver? observer) => new(this, sessionId, sessionHash, nowTicks, nowUtcTicks, spec)
    {
        // Decided before the run is published, so whichever thread ends it knows without a fence whether to look for an activity.
        Traced = RunSupervisorActivitySource.Source.HasListeners(),
        EndObserver = observer,
        Leased = _leaseStore is not null,
    };

    /// <summary>Starts a run that may wait: through the lease store when there is one, else <see cref="StartLocalAsync"/>.</summary>
    private ValueTask<RunHandle> StartAsyncCore(string sessionId, RunStartOptions? options, IRunEndObserver? observer, CancellationToken cancellationToken)
        => _leaseStore is null ? StartLocalAsync(sessionId, options, observer, cancellationToken) : StartLeasedAsync(sessionId, options, observer, cancellationToken);

    /// <summary>Starts a run that may wait, in this process: completes at once when admitted (or refused) at once.</summary>
    private ValueTask<RunHandle> StartLocalAsync(string sessionId, RunStartOptions? options, IRunEndObserver? observer, CancellationToken cancellationToken)
    {
        RunEntry? entry = StartCore(sessionId, options, observer, mayWait: true, cancellationToken, out StartRefusal refusal);
        if (entry is not null)
        {
            return new ValueTask<RunHandle>(new RunHandle(entry));
        }

        return refusal.Waiter is { } waiter
            ? new ValueTask<RunHandle>(waiter.Task)
            : ValueTask.FromException<RunHandle>(RefusalFailure(sessionId, refusal));
    }

    /// <summary>
    /// Starts a supervised invocation's run in this process without a ticket (the invocation holds the entry itself):
    /// the entry when admitted at once, else the waiting start's task; a refusal throws, as from <see cref="Start(string, RunStartOptions?)"/>.
    /// </summary>
    private RunEntry? StartInvocation(string sessionId, RunStartOptions? options, IRunEndObserver observer, CancellationToken cancellationToken, out Task<RunHandle>? waiting)
    {
        waiting = null;
        RunEntry? entry = StartCore(sessionId, options, observer, mayWait: true, cancellationToken, out StartRefusal refusal);
        if (entry is null)
        {
            waiting = refusal.Waiter?.Task ?? throw RefusalFailure(sessionId, refusal);
        }

        return entry;
    }

    private Exception RefusalFailure(string sessionId, in StartRefusal refusal) => refusal.Failure ?? RefusalException(sessionId, refusal);

    private Exception RefusalException(string sessionId, in StartRefusal refusal) => refusal.Result.Outcome == EnterOutcome.Full
        ? RunQueueFullException.LaneFull(sessionId, _table.Lanes.Names[refusal.Spec.Lane], refusal.Result.Limit)
        : refusal.Result.Current is { } current
            ? new SessionBusyException(sessionId, current.RunId, current.FencingToken, ownerHostId: null)
            : new SessionBusyException(sessionId, 0);

    /// <summary>Throws what a start with <paramref name="options"/> would throw for them (nothing for none); for adapters that fix their options up front, and for starts whose token is already cancelled.</summary>
    internal void ValidateStartOptions(RunStartOptions? options)
    {
        if (options is not null)
        {
            _ = ResolveStartOptions(options);
        }
    }

    private StartSpec ResolveStartOptions(RunStartOptions options)
    {
        TimeSpan timeout = options.Timeout ?? _runTimeout;
        TimeSpan grace = options.GracePeriod ?? _gracePeriod;
        if (timeout <= TimeSpan.Zero || timeout > _maxRunDuration || timeout > RunSupervisorOptions.RunTimeoutLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), timeout, $"RunStartOptions.Timeout must be greater than 00:00:00 and at most MaxRunDuration ({_maxRunDuration}) and {RunSupervisorOptions.RunTimeoutLimit}.");
        }

        if (grace < TimeSpan.Zero || grace > RunSupervisorOptions.GracePeriodLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), grace, $"RunStartOptions.GracePeriod must be between 00:00:00 and {RunSupervisorOptions.GracePeriodLimit}.");
        }

        if (!Enum.IsDefined(options.WhenBusy))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.WhenBusy, "RunStartOptions.WhenBusy must be Reject, Supersede or Wait.");
        }

        TimeSpan queueTimeout = options.QueueTimeout ?? _queueTimeout;
        if (queueTimeout < TimeSpan.Zero || queueTimeout > RunSupervisorOptions.RunTimeoutLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), queueTimeout, $"RunStartOptions.QueueTimeout must be between 00:00:00 and {RunSupervisorOptions.RunTimeoutLimit}.");
        }

        long idleTicks = _defaultSpec.IdleTicks;
        if (options.IdleTimeout is { } idle)
        {
            if (idle != Timeout.InfiniteTimeSpan && (idle <= TimeSpan.Zero || idle > RunSupervisorOptions.RunTimeoutLimit))
            {
                throw new ArgumentOutOfRangeException(nameof(options), idle, $"RunStartOptions.IdleTimeout must be Timeout.InfiniteTimeSpan (off) or greater than 00:00:00 and at most {RunSupervisorOptions.RunTimeoutLimit}.");
            }

            idleTicks = idle == Timeout.InfiniteTimeSpan ? 0 : idle.Ticks;
        }

        int lane = _table.Lanes.IndexOf(options.Lane, nameof(options));
        return new StartSpec(timeout.Ticks, grace.Ticks, idleTicks, queueTimeout.Ticks, options.WhenBusy, options.Background, lane);
    }

    /// <summary>Why a start did not enter: the table's answer, and the waiting start or the failure when it may wait.</summary>
    private readonly struct StartRefusal
    {
        public StartRefusal(EnterResult result, StartSpec spec, PendingStart? waiter, Exception? failure)
        {
            Result = result;
            Spec = spec;
            Waiter = waiter;
            Failure = failure;
        }

        public EnterResult Result { get; }

        public StartSpec Spec { get; }

        public PendingStart? Waiter { get; }

        public Exception? Failure { get; }
    }
}
