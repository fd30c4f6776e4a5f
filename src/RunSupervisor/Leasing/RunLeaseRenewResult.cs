namespace RunSupervisor.Leasing;

/// <summary>The answer of <see cref="IRunLeaseStore.RenewAsync"/> for one lease.</summary>
public sealed class RunLeaseRenewResult
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseRenewResult"/> class.</summary>
    /// <param name="lease">The lease renewed.</param>
    /// <param name="status">What the renew found.</param>
    /// <param name="abortRequested">Whether another host asked this run to abort (read from the lease's abort flag).</param>
    /// <param name="abortReason">The abort's reason, when one was given.</param>
    /// <param name="currentOwner">The lease holding the session instead, for <see cref="RunLeaseRenewStatus.TakenOver"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="lease"/> is <see langword="null"/>.</exception>
    public RunLeaseRenewResult(RunLease lease, RunLeaseRenewStatus status, bool abortRequested = false, string? abortReason = null, RunLeaseInfo? currentOwner = null)
    {
        ArgumentNullException.ThrowIfNull(lease);
        Lease = lease;
        Status = status;
        AbortRequested = abortRequested;
        AbortReason = abortReason;
        CurrentOwner = currentOwner;
    }

    /// <summary>Gets the lease renewed.</summary>
    public RunLease Lease { get; }

    /// <summary>Gets what the renew found.</summary>
    public RunLeaseRenewStatus Status { get; }

    /// <summary>Gets a value indicating whether another host asked this run to abort.</summary>
    public bool AbortRequested { get; }

    /// <summary>Gets the abort's reason, when one was given.</summary>
    public string? AbortReason { get; }

    /// <summary>Gets the lease holding the session instead, for <see cref="RunLeaseRenewStatus.TakenOver"/>.</summary>
    public RunLeaseInfo? CurrentOwner { get; }
}
