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
}
