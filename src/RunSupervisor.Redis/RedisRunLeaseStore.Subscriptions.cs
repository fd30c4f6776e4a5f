using Microsoft.Extensions.Logging;
using RunSupervisor.Leasing;
using StackExchange.Redis;

namespace RunSupervisor.Redis;

/// <summary>Pub/sub: one channel per subscribed host (aborts, supersedes), one shared channel for releases, and reconnects.</summary>
public sealed partial class RedisRunLeaseStore
{
    private readonly Lock _observersLock = new();
    private readonly SemaphoreSlim _subscribeGate = new(1, 1);
    private readonly Dictionary<string, HostEntry> _hosts = new(StringComparer.Ordinal);
    private readonly Action<RedisChannel, RedisValue> _onReleased;
    private bool _releasedSubscribed;

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="hostId"/> or <paramref name="observer"/> is <see langword="null"/>.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not confirm the subscription within the per-call timeout.</exception>
    /// <remarks>
    /// Delivery is at most once per message (Redis pub/sub keeps nothing for a disconnected subscriber); the observer gets
    /// <see cref="RunLeaseNotificationKind.Reconnected"/> at least once after each restored connection, so it can
    /// reconcile through renew and poll. <see cref="RunLeaseNotificationKind.Released"/> reaches every observer of this
    /// store, the releasing host's own included.
    /// </remarks>
    public ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hostId);
        ArgumentNullException.ThrowIfNull(observer);
        ThrowIfDisposed();
        return new ValueTask<IAsyncDisposable>(SubscribeCoreAsync(hostId, observer, cancellationToken));
    }

    private async Task<IAsyncDisposable> SubscribeCoreAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken)
    {
        var subscription = new Subscription(this, hostId, observer);
        ISubscriber subscriber = _multiplexer.GetSubscriber();
        await _subscribeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_releasedSubscribed)
            {
                await SubscribeChannelAsync(subscriber, hostId, _keys.ReleasedChannel, _onReleased, cancellationToken).ConfigureAwait(false);
                _releasedSubscribed = true;
            }

            HostEntry? entry;
            lock (_observersLock)
            {
                _hosts.TryGetValue(hostId, out entry);
            }

            if (entry is null)
            {
                entry = new HostEntry(hostId);
                HostEntry target = entry;
                entry.Handler = (_, message) => OnHostMessage(target, message);
                await SubscribeChannelAsync(subscriber, hostId, _keys.HostChannel(hostId), entry.Handler, cancellationToken).ConfigureAwait(false);
            }

            bool disposed;
            lock (_observersLock)
            {
                // Dispose takes this lock after marking the store disposed: either it sees this entry, or this sees it.
                disposed = Volatile.Read(ref _disposed) != 0;
                if (!disposed)
                {
                    _hosts[hostId] = entry;
                    entry.Subscriptions = [.. entry.Subscriptions, subscription];
                }
            }

            if (disposed)
            {
                // Disposed while the subscribe was in flight: undo what Dispose could not see.
                if (entry.Subscriptions.Length == 0 && entry.Handler is { } handler)
                {
                    subscriber.Unsubscribe(_keys.HostChannel(hostId), handler, CommandFlags.FireAndForget);
                }

                subscriber.Unsubscribe(_keys.ReleasedChannel, _onReleased, CommandFlags.FireAndForget);
                ThrowIfDisposed();
            }
        }
        finally
        {
            _subscribeGate.Release();
        }

        return subscription;
    }

    private async Task SubscribeChannelAsync(ISubscriber subscriber, string hostId, RedisChannel channel, Action<RedisChannel, RedisValue> handler, CancellationToken cancellationToken)
    {
        try
        {
            await CallAsync("subscribe", hostId, Confirmed(subscriber.SubscribeAsync(channel, handler, CommandFlags.DemandMaster)), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The client registers the handler before the server confirms, and would re-subscribe it on reconnect: drop it,
            // or a retried subscribe would deliver every message twice.
            subscriber.Unsubscribe(channel, handler, CommandFlags.FireAndForget);
            throw;
        }
    }

    private static async Task<bool> Confirmed(Task subscribe)
    {
        await subscribe.ConfigureAwait(false);
        return true;
    }

    private async ValueTask UnsubscribeAsync(Subscription subscription)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        await _subscribeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            HostEntry? emptied = null;
            bool noneLeft;
            lock (_observersLock)
            {
                if (_hosts.TryGetValue(subscription.HostId, out HostEntry? entry))
                {
                    entry.Subscriptions = [.. entry.Subscriptions.Where(s => !ReferenceEquals(s, subscription))];
                    if (entry.Subscriptions.Length == 0)
                    {
                        _hosts.Remove(subscription.HostId);
                        emptied = entry;
                    }
                }

                noneLeft = _hosts.Count == 0;
            }

            ISubscriber subscriber = _multiplexer.GetSubscriber();
            try
            {
                if (emptied?.Handler is { } handler)
                {
                    await subscriber.UnsubscribeAsync(_keys.HostChannel(emptied.HostId), handler, CommandFlags.DemandMaster).WaitAsync(_timeout).ConfigureAwait(false);
                }

                if (noneLeft && _releasedSubscribed)
                {
                    _releasedSubscribed = false;
                    await subscriber.UnsubscribeAsync(_keys.ReleasedChannel, _onReleased, CommandFlags.DemandMaster).WaitAsync(_timeout).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is TimeoutException or RedisException or ObjectDisposedException)
            {
                // The handler is already gone locally, so nothing more is delivered; the server forgets the channel when the
                // connection next drops.
                _logger.CallFailed("unsubscribe", subscription.HostId, 0, e);
            }
        }
        finally
        {
            _subscribeGate.Release();
        }
    }

    private void UnsubscribeAll()
    {
        HostEntry[] entries;
        lock (_observersLock)
        {
            entries = [.. _hosts.Values];
            _hosts.Clear();
        }

        ISubscriber subscriber = _multiplexer.GetSubscriber();
        foreach (HostEntry entry in entries)
        {
            if (entry.Handler is { } handler)
            {
                subscriber.Unsubscribe(_keys.HostChannel(entry.HostId), handler, CommandFlags.FireAndForget);
            }
        }

        if (_releasedSubscribed)
        {
            subscriber.Unsubscribe(_keys.ReleasedChannel, _onReleased, CommandFlags.FireAndForget);
        }
    }

    private void OnHostMessage(HostEntry entry, RedisValue payload)
    {
        if (Parse(_keys.HostChannelName(entry.HostId), payload) is { } notification)
        {
            Subscription[] targets;
            lock (_observersLock)
            {
                targets = entry.Subscriptions;
            }

            Deliver(notification, targets);
        }
    }

    private void OnReleasedMessage(RedisChannel channel, RedisValue payload)
    {
        if (Parse(channel.ToString(), payload) is { } notification)
        {
            Deliver(notification, AllSubscriptions());
        }
    }

    private RunLeaseNotification? Parse(string channel, RedisValue payload)
    {
        if (LeaseMessage.TryParse((byte[]?)payload, out LeaseMessage message) && message.ToNotification() is { } notification)
        {
            return notification;
        }

        _logger.NotificationMalformed(channel);
        return null;
    }

    private Subscription[] AllSubscriptions()
    {
        lock (_observersLock)
        {
            return [.. _hosts.Values.SelectMany(e => e.Subscriptions)];
        }
    }

    private void Deliver(RunLeaseNotification notification, Subscription[] targets)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        _metrics.Measure(_metrics.Notifications, 1L, static (c, v) => c.Add(v));
        _logger.NotificationReceived(notification.Kind, notification.SessionId, notification.FencingToken, targets.Length);
        foreach (Subscription target in targets)
        {
            if (target.IsDisposed)
            {
                continue;
            }

            try
            {
                target.Observer.OnNotification(notification);
            }
#pragma warning disable CA1031 // An observer's bug must not stop delivery to the others, nor kill the connection's reader.
            catch (Exception e)
#pragma warning restore CA1031
            {
                _logger.ObserverFailed(target.HostId, notification.Kind, notification.SessionId, e);
            }
        }
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        _logger.ConnectionFailed(e.EndPoint, e.ConnectionType, e.FailureType, e.Exception);
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        Subscription[] targets = AllSubscriptions();
        _logger.ConnectionRestored(e.EndPoint, e.ConnectionType, targets.Length);
        Deliver(new RunLeaseNotification(RunLeaseNotificationKind.Reconnected, string.Empty, 0), targets);
    }

    private sealed class HostEntry(string hostId)
    {
        public string HostId { get; } = hostId;

        public Action<RedisChannel, RedisValue>? Handler { get; set; }

        public Subscription[] Subscriptions { get; set; } = [];
    }

    private sealed class Subscription(RedisRunLeaseStore store, string hostId, IRunLeaseObserver observer) : IAsyncDisposable
    {
        private int _disposed;

        public string HostId { get; } = hostId;

        public IRunLeaseObserver Observer { get; } = observer;

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        public ValueTask DisposeAsync() => Interlocked.Exchange(ref _disposed, 1) == 0 ? store.UnsubscribeAsync(this) : default;
    }
}
