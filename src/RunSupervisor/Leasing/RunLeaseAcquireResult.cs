namespace RunSupervisor.Leasing;

/// <summary>The answer of <see cref="IRunLeaseStore.AcquireAsync"/>: the new lease, or who holds the session.</summary>
public sealed class RunLeaseAcquireResult
{
    private RunLeaseAcquireResult(RunLease? lease, RunLeaseInfo? owner, RunLeaseInfo? superseded)
    {
        Lease = lease;
        Owner = owner;
        Superseded = superseded;
    }

    /// <summary>Gets a value indicating whether the lease was taken.</summary>
    public bool IsAcquired => Lease is not null;

    /// <summary>Gets the new lease when it was taken.</summary>
    public RunLease? Lease { get; }

    /// <summary>Gets the current owner when the lease was not taken.</summary>
    public RunLeaseInfo? Owner { get; }

    /// <summary>Gets the owner the new lease replaced, when the request superseded one.</summary>
    public RunLeaseInfo? Superseded { get; }

    /// <summary>Creates the answer for a lease that was taken.</summary>
    /// <param name="lease">The new lease.</param>
    /// <param name="superseded">The owner it replaced, if any.</param>
    /// <returns>The answer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="lease"/> is <see langword="null"/>.</exception>
    public static RunLeaseAcquireResult Acquired(RunLease lease, RunLeaseInfo? superseded = null)
    {
        ArgumentNullException.ThrowIfNull(lease);
        return new RunLeaseAcquireResult(lease, owner: null, superseded);
    }

    /// <summary>Creates the answer for a session held by <paramref name="owner"/>.</summary>
    /// <param name="owner">The current owner.</param>
    /// <returns>The answer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="owner"/> is <see langword="null"/>.</exception>
    public static RunLeaseAcquireResult Held(RunLeaseInfo owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        return new RunLeaseAcquireResult(lease: null, owner, superseded: null);
    }
}
