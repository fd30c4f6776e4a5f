namespace RunSupervisor.Leasing;

/// <summary>A lease a host holds on a session for one run: the session, the host, and the run's fencing token.</summary>
public sealed class RunLease
{
    /// <summary>Initializes a new instance of the <see cref="RunLease"/> class.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="hostId">The holding host.</param>
    /// <param name="fencingToken">The token the store minted for this run; positive.</param>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="hostId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fencingToken"/> is not positive.</exception>
    public RunLease(string sessionId, string hostId, long fencingToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(hostId);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(fencingToken);
        SessionId = sessionId;
        HostId = hostId;
        FencingToken = fencingToken;
    }

    /// <summary>Gets the session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the holding host.</summary>
    public string HostId { get; }

    /// <summary>Gets the run's fencing token: strictly larger than any earlier run's of the session, on any host.</summary>
    public long FencingToken { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{SessionId} held by {HostId} (token {FencingToken})";
}
