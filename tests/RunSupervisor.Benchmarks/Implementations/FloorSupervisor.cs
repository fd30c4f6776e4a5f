using System.Collections.Concurrent;

namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>
/// The bare-BCL floor: the least machinery that still gives every run a deadline and a grace timer. One
/// <see cref="ConcurrentDictionary{TKey, TValue}"/> entry, one <see cref="CancellationTokenSource"/> that cancels
/// itself at the timeout, one grace <see cref="ITimer"/> at timeout + grace, both from <see cref="TimeProvider.System"/>;
/// released by <c>TryRemove</c> and disposing both.
/// </summary>
/// <remarks>
/// It is a lower bound, not a usable design: the grace timer's callback is static and captures nothing (a real
/// eviction needs the entry, for an identity-checked removal, and so a closure or a state object), there is no run
/// identity, no abandoned ledger, no completion signal, no logging and no metrics.
/// </remarks>
public sealed class FloorSupervisor : IDisposable
{
    private static readonly TimerCallback EvictCallback = static state => Evict((FloorSupervisor)state!);

    private readonly ConcurrentDictionary<string, (CancellationTokenSource Abort, ITimer Grace)> _runs = new(StringComparer.Ordinal);
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _evictAfter;
    private int _evictions;

    /// <summary>Initializes a new instance of the <see cref="FloorSupervisor"/> class.</summary>
    /// <param name="timeout">Each run's timeout.</param>
    /// <param name="gracePeriod">Each run's grace period after the timeout.</param>
    public FloorSupervisor(TimeSpan timeout, TimeSpan gracePeriod)
    {
        _timeout = timeout;
        _evictAfter = timeout + gracePeriod;
    }

    /// <summary>Gets the number of active runs.</summary>
    public int Count => _runs.Count;

    /// <summary>Gets how many grace timers fired (none, in a benchmark).</summary>
    public int Evictions => Volatile.Read(ref _evictions);

    /// <summary>Starts a run: creates both sources and adds the entry.</summary>
    /// <param name="sessionId">The session.</param>
    public void Start(string sessionId)
    {
        var abort = new CancellationTokenSource(_timeout, TimeProvider.System);
        ITimer grace = TimeProvider.System.CreateTimer(EvictCallback, this, _evictAfter, Timeout.InfiniteTimeSpan);
        if (!_runs.TryAdd(sessionId, (abort, grace)))
        {
            abort.Dispose();
            grace.Dispose();
            throw new InvalidOperationException($"Session '{sessionId}' is busy.");
        }
    }

    /// <summary>Releases a run: removes the entry and disposes both sources.</summary>
    /// <param name="sessionId">The session.</param>
    public void Release(string sessionId)
    {
        if (_runs.TryRemove(sessionId, out (CancellationTokenSource Abort, ITimer Grace) run))
        {
            run.Abort.Dispose();
            run.Grace.Dispose();
        }
    }

    /// <summary>Case (a): start and release on an idle session.</summary>
    /// <param name="sessionId">The session.</param>
    public void StartAndRelease(string sessionId)
    {
        Start(sessionId);
        Release(sessionId);
    }

    /// <summary>Case (b): runs <paramref name="provider"/> as the session's run, with the abort token it must observe.</summary>
    /// <typeparam name="T">The provider's result type.</typeparam>
    /// <param name="sessionId">The session.</param>
    /// <param name="provider">The provider call.</param>
    /// <returns>The provider's result.</returns>
    public async Task<T> RunAsync<T>(string sessionId, Func<CancellationToken, Task<T>> provider)
    {
        var abort = new CancellationTokenSource(_timeout, TimeProvider.System);
        ITimer grace = TimeProvider.System.CreateTimer(EvictCallback, this, _evictAfter, Timeout.InfiniteTimeSpan);
        if (!_runs.TryAdd(sessionId, (abort, grace)))
        {
            abort.Dispose();
            grace.Dispose();
            throw new InvalidOperationException($"Session '{sessionId}' is busy.");
        }

        try
        {
            return await provider(abort.Token).ConfigureAwait(false);
        }
        finally
        {
            _runs.TryRemove(sessionId, out _);
            abort.Dispose();
            grace.Dispose();
        }
    }

    /// <summary>Case (c): whether the session has a run.</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns><see langword="true"/> if a run owns the session.</returns>
    public bool IsActive(string sessionId) => _runs.ContainsKey(sessionId);

    /// <summary>Case (c): the queue decision table, hand-rolled over the dictionary (no counting, no logging).</summary>
    /// <param name="request">The message or heartbeat tick.</param>
    /// <returns>The decision.</returns>
    public QueueDecision Resolve(in QueueRequest request)
    {
        if (!request.HasQueuedFollowups && !_runs.ContainsKey(request.SessionId))
        {
            return new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle);
        }

        if (request.IsHeartbeat)
        {
            return new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileBusy);
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

    /// <summary>Cancels and disposes every remaining run.</summary>
    public void Dispose()
    {
        foreach (KeyValuePair<string, (CancellationTokenSource Abort, ITimer Grace)> entry in _runs)
        {
            entry.Value.Abort.Dispose();
            entry.Value.Grace.Dispose();
        }

        _runs.Clear();
    }

    private static void Evict(FloorSupervisor self) => Interlocked.Increment(ref self._evictions);
}
