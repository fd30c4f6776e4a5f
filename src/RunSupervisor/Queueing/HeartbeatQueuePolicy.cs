using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RunSupervisor;

/// <summary>
/// Decides what an incoming message or heartbeat tick does for a session: run now, enqueue, or drop. It never
/// drops silently: every dropped heartbeat is logged and counted, and when the session becomes idle again
/// (its run released, timed out, aborted or force-evicted, and no start waiting for it in the registry)
/// <see cref="HeartbeatOwed"/> is raised once so the host can fire the missed tick at once.
/// </summary>
/// <remarks>
/// <para>Starts waiting for admission in the registry (<see cref="SessionBusyBehavior.Wait"/>, a full lane) count as
/// queued follow-ups: a heartbeat on such a session is dropped with the "queued" reason, and it is owed only once the
/// session has no run and no waiting start, not when the first run ends and a waiting one is admitted.</para>
/// <para>Decision table, checked in order: idle session with nothing queued → <see cref="QueueAction.RunNow"/>;
/// heartbeat → <see cref="QueueAction.Drop"/>; reset → <see cref="QueueAction.RunNow"/>; follow-up wanted, or a
/// steer, follow-up or collect mode → <see cref="QueueAction.Enqueue"/>; otherwise (interrupt) →
/// <see cref="QueueAction.RunNow"/>.</para>
/// <para>Thread-safe. A heartbeat that races with the end of the run it would be dropped for is either run
/// (the session was already idle) or counted before the end is processed, so it is always owed.</para>
/// </remarks>
public sealed class HeartbeatQueuePolicy : IDisposable, IRunEndListener
{
    private readonly IHeartbeatSource _runs;
    private readonly ILogger _logger;

    // Guards the drop counts. Taken after a run has left the registry (in its end notification) and around counting a
    // drop, so that a drop is either seen by the end that makes the session idle or made after it (and then not a drop).
    private readonly Lock _dropsLock = new();
    private readonly Dictionary<string, int> _dropped = new(StringComparer.Ordinal);
    private int _disposed;

    /// <summary>Gets the lock that orders a counted drop against a run's end; tests hold it to stop a heartbeat between its look and its count.</summary>
    internal Lock DropsLock => _dropsLock;

    /// <summary>Initializes a new instance of the <see cref="HeartbeatQueuePolicy"/> class and subscribes to the registry's run ends.</summary>
    /// <param name="registry">The registry whose runs decide whether a session is busy.</param>
    /// <param name="logger">The logger for drops and owed heartbeats; <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="registry"/> is <see langword="null"/>.</exception>
    public HeartbeatQueuePolicy(ActiveRunRegistry registry, ILogger<HeartbeatQueuePolicy>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _runs = registry;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _runs.Subscribe(this);
    }

    /// <summary>
    /// Occurs once when a session that dropped heartbeats becomes idle; the drop count resets then. Raised
    /// outside any lock; an exception from a handler is logged and the other handlers still run. Not raised for
    /// runs ended by the registry's disposal: there is no session left to run the heartbeat on.
    /// </summary>
    public event EventHandler<HeartbeatOwedEventArgs>? HeartbeatOwed;

    /// <summary>Decides what <paramref name="request"/> does. Does not allocate.</summary>
    /// <param name="request">The message or heartbeat tick.</param>
    /// <returns>The action and a stable reason (see <see cref="QueueDecisionReasons"/>).</returns>
    /// <exception cref="ArgumentException">The request's session id is null, empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The policy or its registry is disposed.</exception>
    public QueueDecision Resolve(in QueueRequest request)
    {
        SessionIds.Validate(request.SessionId, nameof(request));
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ObjectDisposedException.ThrowIf(_runs.IsDisposed, _runs);
        string sessionId = request.SessionId;
        RunEntry? run = null;
        if (!request.HasQueuedFollowups && (run = _runs.FindRun(sessionId)) is null && !_runs.HasQueuedStarts(sessionId))
        {
            return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle);
        }

        if (request.IsHeartbeat)
        {
            return DropHeartbeat(sessionId, run, request.HasQueuedFollowups);
        }

        if (request.ResetTriggered)
        {
            return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset);
        }

        if (request.ShouldFollowup)
        {
            return new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup);
        }

        return request.Mode is QueueMode.Interrupt
            ? new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Interrupt)
            : new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.QueueMode);
    }

    /// <summary>
    /// Decides what <paramref name="request"/> does across hosts: as <see cref="Resolve(in QueueRequest)"/> does when the
    /// session is busy here; when it is idle here and the registry has a lease store, a session whose lease another host
    /// holds is busy too (a heartbeat is dropped with <see cref="QueueDecisionReasons.HeartbeatWhileRemote"/>, counted, and
    /// owed on this host once the session is idle cluster-wide: its release message, a poll every
    /// <see cref="Leasing.RunLeaseOptions.RemoteIdlePollInterval"/>, or a reconnect). Without a store it completes
    /// synchronously with <see cref="Resolve(in QueueRequest)"/>'s answer.
    /// </summary>
    /// <param name="request">The message or heartbeat tick.</param>
    /// <param name="cancellationToken">Cancels the store call.</param>
    /// <returns>The action and a stable reason (see <see cref="QueueDecisionReasons"/>).</returns>
    /// <remarks>
    /// When the store does not answer within <see cref="Leasing.RunLeaseOptions.AcquireTimeout"/>, a registry that fails
    /// closed drops the heartbeat (<see cref="QueueDecisionReasons.HeartbeatWhileStoreUnavailable"/>, owed once the store
    /// answers that the session is idle); one that fails open runs it.
    /// </remarks>
    /// <exception cref="ArgumentException">The request's session id is null, empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The policy or its registry is disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<QueueDecision> ResolveAsync(QueueRequest request, CancellationToken cancellationToken = default)
    {
        QueueDecision local = Resolve(request);
        if (!_runs.HasLeaseStore || local.Reason != QueueDecisionReasons.Idle)
        {
            return new ValueTask<QueueDecision>(local);
        }

        return ResolveRemoteAsync(request, cancellationToken);
    }

    /// <summary>Gets how many heartbeats the session dropped since it was last idle.</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns>The count; zero once <see cref="HeartbeatOwed"/> has been raised for it.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    public int GetDroppedHeartbeats(string sessionId)
    {
        SessionIds.Validate(sessionId);
        lock (_dropsLock)
        {
            return _dropped.GetValueOrDefault(sessionId);
        }
    }

    /// <summary>
    /// Gets a snapshot of every session's current heartbeat-drop streak: the sessions that dropped at least one
    /// heartbeat since they were last idle, with the count <see cref="GetDroppedHeartbeats(string)"/> would return.
    /// </summary>
    /// <returns>A new dictionary (ordinal keys) that later drops and owed heartbeats do not change; empty when no session is dropping.</returns>
    /// <remarks>Takes the policy's lock for a copy; meant for health checks and diagnostics, not for the hot path.</remarks>
    public IReadOnlyDictionary<string, int> GetDroppedHeartbeats()
    {
        lock (_dropsLock)
        {
            return new Dictionary<string, int>(_dropped, StringComparer.Ordinal);
        }
    }

    /// <summary>Unsubscribes from the registry. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _runs.Unsubscribe(this);
        }
    }

    void IRunEndListener.OnRunEnded(string sessionId, bool sessionIdle)
    {
        // A superseded run leaves its session busy with the new run, and the registry's disposal leaves nothing to run
        // a heartbeat on: the owed heartbeat waits for an end that makes the session idle.
        if (!sessionIdle)
        {
            return;
        }

        int dropped;
        lock (_dropsLock)
        {
            if (!_dropped.TryGetValue(sessionId, out dropped))
            {
                return;
            }

            // Idle when the run left, but another start may have taken the session (or queued for it) before this
            // notification: the heartbeat would only be dropped again. That run's end, or that start's leaving, is
            // notified after this (it is found here, under the lock the drops are counted under) and owes it instead.
            if (IsBusyHere(sessionId))
            {
                return;
            }

            _dropped.Remove(sessionId);
        }

        _logger.HeartbeatOwed(sessionId, dropped);
        if (HeartbeatOwed is { } handlers)
        {
            Callbacks.Raise(handlers, this, new HeartbeatOwedEventArgs(sessionId, dropped), nameof(HeartbeatOwed), sessionId, _logger);
        }
    }

    private async ValueTask<QueueDecision> ResolveRemoteAsync(QueueRequest request, CancellationToken cancellationToken)
    {
        string sessionId = request.SessionId;
        string busyReason;
        long releasesHeard = _runs.ReleasesHeard;
        _runs.RenewWatch(sessionId);
        try
        {
            if (!await _runs.IsHeldElsewhereAsync(sessionId, cancellationToken).ConfigureAwait(false))
            {
                return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle);
            }

            busyReason = QueueDecisionReasons.HeartbeatWhileRemote;
        }
        catch (Leasing.RunLeaseUnavailableException) when (!_runs.FailsOpen)
        {
            busyReason = QueueDecisionReasons.HeartbeatWhileStoreUnavailable;
        }
        catch (Leasing.RunLeaseUnavailableException)
        {
            return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle);
        }

        if (!request.IsHeartbeat)
        {
            // A message for a session running elsewhere follows the same table as one for a session busy here.
            return request.ResetTriggered ? new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset)
                : request.ShouldFollowup ? new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup)
                : request.Mode is QueueMode.Interrupt ? new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Interrupt)
                : new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.QueueMode);
        }

        int dropped;
        lock (_dropsLock)
        {
            ref int count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_dropped, sessionId, out _);
            dropped = ++count;
        }

        // Watched after the drop is counted, so the idle notice that follows always finds it.
        _runs.WatchRemote(sessionId, releasesHeard);
        _runs.RecordHeartbeatDropped();
        _logger.HeartbeatDropped(sessionId, busyReason, dropped);
        return new QueueDecision(QueueAction.Drop, busyReason);
    }

    /// <summary>Whether this registry has a run or a waiting start on <paramref name="sessionId"/>; exact under the drop lock as far as these notifications go.</summary>
    private bool IsBusyHere(string sessionId) => _runs.FindRun(sessionId) is not null || _runs.HasQueuedStarts(sessionId);

    /// <param name="sessionId">The session.</param>
    /// <param name="run">The run the lookup found, or <see langword="null"/> when follow-ups are queued and no lookup was needed.</param>
    /// <param name="requestHasQueuedFollowups">Whether the host said follow-ups are queued: then the drop stands whatever the registry says.</param>
    private QueueDecision DropHeartbeat(string sessionId, RunEntry? run, bool requestHasQueuedFollowups)
    {
        int dropped;
        lock (_dropsLock)
        {
            // A run that has not left yet will take this lock for its end notification after this drop is counted. One
            // that has left (or a waiting start that has gone) may have been told already: then only a newer run or a
            // start still waiting (found now, under the lock) makes it a drop.
            if ((run is null || run.HasEnded) && !IsBusyHere(sessionId) && !requestHasQueuedFollowups)
            {
                return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle);
            }

            ref int count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_dropped, sessionId, out _);
            dropped = ++count;
        }

        string reason = run is null ? QueueDecisionReasons.HeartbeatWhileQueued : QueueDecisionReasons.HeartbeatWhileBusy;
        _runs.RecordHeartbeatDropped();
        _logger.HeartbeatDropped(sessionId, reason, dropped);
        return new QueueDecision(QueueAction.Drop, reason);
    }
}
