namespace RunSupervisor.Leasing;

/// <summary>
/// How a registry uses its <see cref="IRunLeaseStore"/>; <see cref="RunSupervisorOptions.Lease"/>, bound from the
/// configuration section <c>RunSupervisor:Lease</c>. Ignored without a store. Validated with the registry's options.
/// </summary>
/// <remarks>
/// A lease's time to live is not a run's deadline: it only says "this host is alive". The lease is renewed while the run
/// is in the registry and released when it leaves, eviction included, so a host that dies or freezes loses its sessions
/// one <see cref="LeaseTtl"/> later and a zombie provider never holds a session across hosts.
/// </remarks>
public sealed class RunLeaseOptions
{
    /// <summary>Gets or sets how long a lease lives without a renew. Default 15 seconds; at least 1 second, at most 1 hour.</summary>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Gets or sets how often the watchdog renews every lease of this host, in one batch. Default 5 seconds; greater
    /// than zero and less than half of (<see cref="LeaseTtl"/> − <see cref="LeaseSafetyMargin"/>), so one lost renew
    /// never costs a lease.
    /// </summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets how much earlier than the store a host stops trusting its lease: a run stops being current at (send
    /// time of its last confirmed renew) + <see cref="LeaseTtl"/> − this margin (taken as at least 16 ms on
    /// <see cref="TimeProvider.System"/>, the resolution of the system tick the registry counts on), so clock drift and a
    /// slow answer never leave two hosts both believing they own a session. Default 1 second; not negative and less than <see cref="LeaseTtl"/>.
    /// </summary>
    public TimeSpan LeaseSafetyMargin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets or sets the longest a start waits for the store's answer to its acquire (and any other single call; a batched
    /// renew waits at most half of <see cref="RenewInterval"/>, so that it never holds back the next one). Default 2
    /// seconds; greater than zero, at most <see cref="LeaseTtl"/>.
    /// </summary>
    public TimeSpan AcquireTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Gets or sets how often a host asks the store about sessions it is waiting on (a heartbeat dropped for, or a start
    /// waiting for, a run on another host): the release message usually comes first, the poll covers a lost message and
    /// a crashed owner. Default 5 seconds; greater than zero, at most 1 hour.
    /// </summary>
    public TimeSpan RemoteIdlePollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets what a registry does when the store cannot be reached. Default <see cref="StoreUnavailableBehavior.FailClosed"/>.</summary>
    public StoreUnavailableBehavior OnStoreUnavailable { get; set; }

    /// <summary>
    /// Gets or sets this host's id in the store (who holds a lease, whose channel gets its notifications). Default
    /// <see langword="null"/>: the machine name, the process id and a random suffix, unique per registry. At most 200
    /// characters.
    /// </summary>
    public string? HostId { get; set; }
}
