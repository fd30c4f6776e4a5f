using System.Globalization;

namespace RunSupervisor.Leasing;

/// <summary>
/// An <see cref="IRunLeaseStore"/> in memory. Several registries that share one instance behave as hosts that share a
/// store, with every lease timed on the injected <see cref="TimeProvider"/>: so each cross-host rule can be exercised in
/// one process, deterministically, and a host crash, a store outage, a lost key or a store restart can be simulated.
/// </summary>
/// <remarks>
/// <para>Thread-safe. Every operation completes synchronously. Notifications are delivered on the thread of the call
/// that caused them, after the store's own lock is released and before that call returns; so is
/// <see cref="RunLeaseNotificationKind.Reconnected"/>, on the thread that ends an outage.</para>
/// <para>Fencing tokens are <c>max(previous + 1, store time in µs)</c>, as a real store's must be, so they keep increasing
/// across <see cref="Restart"/>, which forgets everything as a store without persistence does.</para>
/// </remarks>
public sealed class InMemoryRunLeaseStore : IRunLeaseStore
{
    private readonly Lock _lock = new();
    private readonly TimeProvider _timeProvider;
    private readonly Dictionary<string, Entry> _leases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _fences = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Subscription>> _subscriptions = new(StringComparer.Ordinal);
    private readonly HashSet<string> _crashedHosts = new(StringComparer.Ordinal);
    private int _outage;
    private long _calls;

    /// <summary>Initializes a new instance of the <see cref="InMemoryRunLeaseStore"/> class.</summary>
    /// <param name="timeProvider">The store's clock, for lease expiry and fencing tokens; <see langword="null"/> for <see cref="TimeProvider.System"/>.</param>
    public InMemoryRunLeaseStore(TimeProvider? timeProvider = null)
    {
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    private enum OutageMode
    {
        None,
        Fail,
        Hang,
    }

    /// <summary>Gets the number of calls the store has answered or refused, for tests that check a path never reached the store.</summary>
    public long CallCount => Interlocked.Read(ref _calls);

    /// <summary>Gets the number of leases currently held (not expired).</summary>
    public int LeaseCount
    {
        get
        {
            lock (_lock)
            {
                DateTimeOffset now = _timeProvider.GetUtcNow();
                return _leases.Values.Count(e => e.ExpiresAt > now);
            }
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is <see langword="null"/>.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage, or the request's host has crashed.</exception>
    public ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Unavailable(request.SessionId, request.HostId, cancellationToken) is { } refused)
        {
            return Refused<RunLeaseAcquireResult>(refused);
        }

        RunLeaseAcquireResult result;
        Notify notify = default;
        lock (_lock)
        {
            DateTimeOffset now = _timeProvider.GetUtcNow();
            Entry? current = Live(request.SessionId, now);
            if (current is not null && !request.Supersede)
            {
                current.Watched = true;
                result = RunLeaseAcquireResult.Held(current.ToInfo(request.SessionId));
            }
            else
            {
                long previous = _fences.GetValueOrDefault(request.SessionId);
                long token = Math.Max(previous + 1, now.ToUnixTimeMilliseconds() * 1000 + (now.Ticks % TimeSpan.TicksPerMillisecond / 10));
                _fences[request.SessionId] = token;
                var entry = new Entry(request.HostId, token, now + request.Ttl) { Watched = current?.Watched ?? false };
                _leases[request.SessionId] = entry;
                var lease = new RunLease(request.SessionId, request.HostId, token);
                RunLeaseInfo? superseded = current?.ToInfo(request.SessionId);
                result = RunLeaseAcquireResult.Acquired(lease, superseded);
                if (superseded is not null)
                {
                    notify = new Notify(superseded.HostId, new RunLeaseNotification(RunLeaseNotificationKind.Superseded, request.SessionId, superseded.FencingToken, newOwner: entry.ToInfo(request.SessionId)));
                }
            }
        }

        Deliver(notify);
        return new ValueTask<RunLeaseAcquireResult>(result);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="leases"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ttl"/> is not positive.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage, or a lease's host has crashed.</exception>
    public ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(leases);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        if (leases.Count == 0)
        {
            return new ValueTask<IReadOnlyList<RunLeaseRenewResult>>(Array.Empty<RunLeaseRenewResult>());
        }

        if (Unavailable(leases[0].SessionId, leases[0].HostId, cancellationToken) is { } refused)
        {
            return Refused<IReadOnlyList<RunLeaseRenewResult>>(refused);
        }

        var results = new RunLeaseRenewResult[leases.Count];
        lock (_lock)
        {
            DateTimeOffset now = _timeProvider.GetUtcNow();
            for (int i = 0; i < leases.Count; i++)
            {
                RunLease lease = leases[i];
                Entry? current = Live(lease.SessionId, now);
                if (current is null)
                {
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.Missing);
                }
                else if (current.Token != lease.FencingToken)
                {
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.TakenOver, currentOwner: current.ToInfo(lease.SessionId));
                }
                else
                {
                    current.ExpiresAt = now + ttl;
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.Renewed, current.AbortRequested, current.AbortReason);
                }
            }
        }

        return new ValueTask<IReadOnlyList<RunLeaseRenewResult>>(results);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="lease"/> is <see langword="null"/>.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage, or the lease's host has crashed.</exception>
    public ValueTask<bool> ReleaseAsync(RunLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        if (Unavailable(lease.SessionId, lease.HostId, cancellationToken) is { } refused)
        {
            return Refused<bool>(refused);
        }

        bool released;
        bool announce = false;
        lock (_lock)
        {
            Entry? current = Live(lease.SessionId, _timeProvider.GetUtcNow());
            released = current is not null && current.Token == lease.FencingToken;
            if (released)
            {
                _leases.Remove(lease.SessionId);
                announce = current!.Watched;
            }
        }

        if (announce)
        {
            DeliverToAll(new RunLeaseNotification(RunLeaseNotificationKind.Released, lease.SessionId, lease.FencingToken));
        }

        return new ValueTask<bool>(released);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage.</exception>
    public ValueTask<bool> RequestAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (Unavailable(sessionId, hostId: null, cancellationToken) is { } refused)
        {
            return Refused<bool>(refused);
        }

        Notify notify = default;
        lock (_lock)
        {
            Entry? current = Live(sessionId, _timeProvider.GetUtcNow());
            if (current is null || (expectedFencingToken is long expected && current.Token != expected))
            {
                return new ValueTask<bool>(false);
            }

            current.AbortRequested = true;
            current.AbortReason = reason;
            notify = new Notify(current.HostId, new RunLeaseNotification(RunLeaseNotificationKind.AbortRequested, sessionId, current.Token, reason));
        }

        Deliver(notify);
        return new ValueTask<bool>(true);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage.</exception>
    public ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (Unavailable(sessionId, hostId: null, cancellationToken) is { } refused)
        {
            return Refused<RunLeaseInfo?>(refused);
        }

        lock (_lock)
        {
            Entry? current = Live(sessionId, _timeProvider.GetUtcNow());
            if (current is null)
            {
                return new ValueTask<RunLeaseInfo?>((RunLeaseInfo?)null);
            }

            current.Watched = true;
            return new ValueTask<RunLeaseInfo?>(current.ToInfo(sessionId));
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="hostId"/> or <paramref name="observer"/> is <see langword="null"/>.</exception>
    /// <exception cref="RunLeaseUnavailableException">The store simulates an outage, or the host has crashed.</exception>
    public ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hostId);
        ArgumentNullException.ThrowIfNull(observer);
        if (Unavailable(string.Empty, hostId, cancellationToken) is { } refused)
        {
            return Refused<IAsyncDisposable>(refused);
        }

        var subscription = new Subscription(this, hostId, observer);
        lock (_lock)
        {
            if (!_subscriptions.TryGetValue(hostId, out List<Subscription>? list))
            {
                _subscriptions[hostId] = list = [];
            }

            list.Add(subscription);
        }

        return new ValueTask<IAsyncDisposable>(subscription);
    }

    /// <summary>
    /// Simulates the crash of a host: from now on the store refuses every call from it (its registry can neither renew
    /// nor release) and delivers it nothing, so its leases lapse one time to live after their last renew.
    /// </summary>
    /// <param name="hostId">The host.</param>
    /// <exception cref="ArgumentNullException"><paramref name="hostId"/> is <see langword="null"/>.</exception>
    public void CrashHost(string hostId)
    {
        ArgumentNullException.ThrowIfNull(hostId);
        lock (_lock)
        {
            _crashedHosts.Add(hostId);
            _subscriptions.Remove(hostId);
        }
    }

    /// <summary>Simulates an outage: every call fails with <see cref="RunLeaseUnavailableException"/>, or, with <paramref name="hang"/>, never answers until its cancellation token is cancelled (as a store behind a partition does).</summary>
    /// <param name="hang">Whether calls hang instead of failing.</param>
    public void BeginOutage(bool hang = false) => Volatile.Write(ref _outage, (int)(hang ? OutageMode.Hang : OutageMode.Fail));

    /// <summary>Ends an outage and tells every subscribed host it reconnected (<see cref="RunLeaseNotificationKind.Reconnected"/>).</summary>
    public void EndOutage()
    {
        Volatile.Write(ref _outage, (int)OutageMode.None);
        DeliverToAll(new RunLeaseNotification(RunLeaseNotificationKind.Reconnected, string.Empty, 0));
    }

    /// <summary>Simulates a restart without persistence: every lease and every fencing counter is forgotten.</summary>
    public void Restart()
    {
        lock (_lock)
        {
            _leases.Clear();
            _fences.Clear();
        }
    }

    /// <summary>Simulates the loss of one session's lease key (evicted, deleted by an operator); no host is told.</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns><see langword="true"/> if the session had a lease that had not expired.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    public bool RemoveLease(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        lock (_lock)
        {
            // A lapsed lease is no lease, as on a server that expires keys by itself: whether a lookup happened to
            // clear it first must not change the answer.
            return Live(sessionId, _timeProvider.GetUtcNow()) is not null && _leases.Remove(sessionId);
        }
    }

    private Entry? Live(string sessionId, DateTimeOffset now)
    {
        if (!_leases.TryGetValue(sessionId, out Entry? entry))
        {
            return null;
        }

        if (entry.ExpiresAt > now)
        {
            return entry;
        }

        _leases.Remove(sessionId);
        return null;
    }

    /// <summary>Counts the call and says how it is refused: <see langword="null"/> when it is not, else a task that fails (or, in a hanging outage, fails only when <paramref name="cancellationToken"/> is cancelled).</summary>
    private Task? Unavailable(string sessionId, string? hostId, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        var outage = (OutageMode)Volatile.Read(ref _outage);
        bool crashed;
        lock (_lock)
        {
            crashed = hostId is not null && _crashedHosts.Contains(hostId);
        }

        if (outage == OutageMode.None && !crashed)
        {
            return null;
        }

        if (outage == OutageMode.Hang && !crashed)
        {
            return Task.Delay(Timeout.InfiniteTimeSpan, _timeProvider, cancellationToken);
        }

        return Task.FromException(new RunLeaseUnavailableException(sessionId, new TimeoutException(crashed
            ? string.Format(CultureInfo.InvariantCulture, "host '{0}' has crashed (simulated)", hostId)
            : "the store is unreachable (simulated outage)")));
    }

    private static async ValueTask<T> Refused<T>(Task refusal)
    {
        await refusal.ConfigureAwait(false);
        throw new InvalidOperationException("A refusal never completes successfully.");
    }

    private void Deliver(in Notify notify)
    {
        if (notify.HostId is null)
        {
            return;
        }

        Subscription[] targets;
        lock (_lock)
        {
            targets = _subscriptions.TryGetValue(notify.HostId, out List<Subscription>? list) ? [.. list] : [];
        }

        foreach (Subscription target in targets)
        {
            target.Observer.OnNotification(notify.Notification!);
        }
    }

    private void DeliverToAll(RunLeaseNotification notification)
    {
        Subscription[] targets;
        lock (_lock)
        {
            targets = [.. _subscriptions.Values.SelectMany(l => l)];
        }

        foreach (Subscription target in targets)
        {
            target.Observer.OnNotification(notification);
        }
    }

    private readonly record struct Notify(string? HostId, RunLeaseNotification? Notification);

    private sealed class Entry(string hostId, long token, DateTimeOffset expiresAt)
    {
        public string HostId { get; } = hostId;

        public long Token { get; } = token;

        public DateTimeOffset ExpiresAt { get; set; } = expiresAt;

        public bool AbortRequested { get; set; }

        public string? AbortReason { get; set; }

        /// <summary>Gets or sets a value indicating whether another host asked about the session while this lease held it, so its release is announced.</summary>
        public bool Watched { get; set; }

        public RunLeaseInfo ToInfo(string sessionId) => new(sessionId, HostId, Token, ExpiresAt);
    }

    private sealed class Subscription(InMemoryRunLeaseStore store, string hostId, IRunLeaseObserver observer) : IAsyncDisposable
    {
        public IRunLeaseObserver Observer { get; } = observer;

        public ValueTask DisposeAsync()
        {
            lock (store._lock)
            {
                if (store._subscriptions.TryGetValue(hostId, out List<Subscription>? list))
                {
                    list.Remove(this);
                }
            }

            return default;
        }
    }
}
