namespace RunSupervisor.Leasing;

/// <summary>What a registry does when its lease store cannot be reached.</summary>
public enum StoreUnavailableBehavior
{
    /// <summary>
    /// Safety first (the default): a start fails with <see cref="RunLeaseUnavailableException"/> after
    /// <see cref="RunLeaseOptions.AcquireTimeout"/>, and a running run ends <see cref="RunEndReason.LeaseLost"/> when its
    /// local validity runs out.
    /// </summary>
    FailClosed,

    /// <summary>
    /// Availability first: a start proceeds unfenced (no lease, the run's own id as its token), logged and counted; a
    /// running run whose renewals fail keeps running until its own deadline.
    /// </summary>
    FailOpen,
}
