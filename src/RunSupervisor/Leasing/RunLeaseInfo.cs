namespace RunSupervisor.Leasing;

/// <summary>Who holds a session's lease, as the store last saw it.</summary>
public sealed class RunLeaseInfo
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseInfo"/> class.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="hostId">The holding host.</param>
    /// <param name="fencingToken">The holder's fencing token.</param>
    /// <param name="expiresAt">When the lease lapses unless renewed, by the store's clock; <see langword="null"/> when the store does not say.</param>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="hostId"/> is <see langword="null"/>.</exception>
    public RunLeaseInfo(string sessionId, string hostId, long fencingToken, DateTimeOffset? expiresAt = null)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(hostId);
        SessionId = sessionId;
        HostId = hostId;
        FencingToken = fencingToken;
        ExpiresAt = expiresAt;
    }

    /// <summary>Gets the session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the holding host.</summary>
    public string HostId { get; }

    /// <summary>Gets the holder's fencing token.</summary>
    public long FencingToken { get; }

    /// <summary>Gets when the lease lapses unless renewed, by the store's clock; <see langword="null"/> when the store does not say.</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{SessionId} held by {HostId} (token {FencingToken})";
}
