namespace RunSupervisor.Leasing;

/// <summary>A message from an <see cref="IRunLeaseStore"/> to a host.</summary>
public sealed class RunLeaseNotification
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseNotification"/> class.</summary>
    /// <param name="kind">What happened.</param>
    /// <param name="sessionId">The session; empty for <see cref="RunLeaseNotificationKind.Reconnected"/>.</param>
    /// <param name="fencingToken">The token of the lease concerned (the released one, the one to abort, the one superseded); 0 when none.</param>
    /// <param name="reason">Why, when the sender said (an abort's reason).</param>
    /// <param name="newOwner">The lease that replaced this host's, for <see cref="RunLeaseNotificationKind.Superseded"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    public RunLeaseNotification(RunLeaseNotificationKind kind, string sessionId, long fencingToken, string? reason = null, RunLeaseInfo? newOwner = null)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        Kind = kind;
        SessionId = sessionId;
        FencingToken = fencingToken;
        Reason = reason;
        NewOwner = newOwner;
    }

    /// <summary>Gets what happened.</summary>
    public RunLeaseNotificationKind Kind { get; }

    /// <summary>Gets the session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the token of the lease concerned; 0 when none.</summary>
    public long FencingToken { get; }

    /// <summary>Gets why, when the sender said.</summary>
    public string? Reason { get; }

    /// <summary>Gets the lease that replaced this host's, for a supersede.</summary>
    public RunLeaseInfo? NewOwner { get; }
}
