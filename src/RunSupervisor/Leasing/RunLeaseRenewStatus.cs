namespace RunSupervisor.Leasing;

/// <summary>What a renew found.</summary>
public enum RunLeaseRenewStatus
{
    /// <summary>The lease was the session's and now lives another time to live.</summary>
    Renewed,

    /// <summary>The session has no lease: it expired, or the store lost it (a restart without persistence).</summary>
    Missing,

    /// <summary>Another lease (another token) holds the session: this run was taken over.</summary>
    TakenOver,
}
