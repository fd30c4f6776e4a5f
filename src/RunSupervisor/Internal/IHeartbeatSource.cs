namespace RunSupervisor;

/// <summary>What <see cref="HeartbeatQueuePolicy"/> needs of a registry, and nothing more.</summary>
internal interface IHeartbeatSource
{
    /// <summary>Gets a value indicating whether the registry is disposed.</summary>
    bool IsDisposed { get; }

    /// <summary>Finds the session's run without validating the id; lock-free.</summary>
    RunEntry? FindRun(string sessionId);

    /// <summary>Gets a value indicating whether starts wait for admission on the session; lock-free.</summary>
    bool HasQueuedStarts(string sessionId);

    /// <summary>Counts a dropped heartbeat on the registry's meter.</summary>
    void RecordHeartbeatDropped();

    /// <summary>Subscribes to run ends (and waiting starts that gave up), told whether each session became idle.</summary>
    void Subscribe(IRunEndListener listener);

    void Unsubscribe(IRunEndListener listener);

    /// <summary>Gets a value indicating whether the registry fails open when its lease store is unavailable.</summary>
    bool FailsOpen { get; }

    /// <summary>Gets a value indicating whether the registry has a lease store, so a session may be busy on another host.</summary>
    bool HasLeaseStore { get; }

    /// <summary>Reads whether another host holds the session's lease; throws <see cref="Leasing.RunLeaseUnavailableException"/> when the store does not answer.</summary>
    ValueTask<bool> IsHeldElsewhereAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>
    /// Watches a session held elsewhere (or unreadable): once it is idle cluster-wide (its release message, a poll, a
    /// reconnect) the listeners are told it became idle, as if a local run had ended.
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="releasesHeardBefore"><see cref="ReleasesHeard"/> as read before the store was asked who holds it: a release
    /// announced since then is not missed.</param>
    void WatchRemote(string sessionId, long releasesHeardBefore);

    /// <summary>Gets how many release (and reconnect) notifications the registry has heard; read before asking the store.</summary>
    long ReleasesHeard { get; }

    /// <summary>Called before asking the store about a session: an answer to a question asked earlier (a poll in flight) can no longer end its watch.</summary>
    void RenewWatch(string sessionId);
}
