namespace RunSupervisor.Leasing;

/// <summary>What <see cref="IRunLeaseStore.AcquireAsync"/> is asked for.</summary>
public sealed class RunLeaseRequest
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseRequest"/> class.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="hostId">The host that will hold the lease.</param>
    /// <param name="ttl">How long the lease lives unless renewed; positive.</param>
    /// <param name="supersede">Whether to take the lease over from a current owner, which is then notified (<see cref="RunLeaseNotificationKind.Superseded"/>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="hostId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ttl"/> is not positive.</exception>
    public RunLeaseRequest(string sessionId, string hostId, TimeSpan ttl, bool supersede = false)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(hostId);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        SessionId = sessionId;
        HostId = hostId;
        Ttl = ttl;
        Supersede = supersede;
    }

    /// <summary>Gets the session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the host that will hold the lease.</summary>
    public string HostId { get; }

    /// <summary>Gets how long the lease lives unless renewed.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Gets a value indicating whether to take the lease over from a current owner.</summary>
    public bool Supersede { get; }
}
