namespace RunSupervisor;

/// <summary>What the heartbeat policy sees of the registry: a narrow view, so the policy never reaches into its internals.</summary>
public sealed partial class ActiveRunRegistry
{
    bool IHeartbeatSource.IsDisposed => IsDisposed;

    RunEntry? IHeartbeatSource.FindRun(string sessionId) => _table.Find(sessionId);

    // The starts waiting for another host's release count too: one of them is about to take the session.
    bool IHeartbeatSource.HasQueuedStarts(string sessionId) => _table.QueuedCount(sessionId) > 0 || (_remoteWaitList?.CountWaiting(sessionId) ?? 0) > 0;

    void IHeartbeatSource.RecordHeartbeatDropped() => Metrics.RecordHeartbeatDropped();

    /// <summary>Subscribes an internal observer to run ends, told after <see cref="RunEnded"/>'s handlers have run.</summary>
    void IHeartbeatSource.Subscribe(IRunEndListener listener) => UpdateEndListeners(listener, add: true);

    void IHeartbeatSource.Unsubscribe(IRunEndListener listener) => UpdateEndListeners(listener, add: false);

    bool IHeartbeatSource.HasLeaseStore => _leaseStore is not null;

    bool IHeartbeatSource.FailsOpen => _failOpen;

    ValueTask<bool> IHeartbeatSource.IsHeldElsewhereAsync(string sessionId, CancellationToken cancellationToken) => IsHeldElsewhereAsync(sessionId, cancellationToken);

    void IHeartbeatSource.WatchRemote(string sessionId, long releasesHeardBefore) => WatchRemote(sessionId, releasesHeardBefore);

    long IHeartbeatSource.ReleasesHeard => ReleasesHeard;

    void IHeartbeatSource.RenewWatch(string sessionId) => RenewWatch(sessionId);

    private void UpdateEndListeners(IRunEndListener listener, bool add)
    {
        IRunEndListener[] current, updated;
        do
        {
            current = Volatile.Read(ref _endListeners);
            updated = add ? [.. current, listener] : [.. current.Where(l => !ReferenceEquals(l, listener))];
        }
        while (!ReferenceEquals(Interlocked.CompareExchange(ref _endListeners, updated, current), current));
    }
}
