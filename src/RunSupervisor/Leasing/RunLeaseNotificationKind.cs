namespace RunSupervisor.Leasing;

/// <summary>What a <see cref="RunLeaseNotification"/> reports.</summary>
public enum RunLeaseNotificationKind
{
    /// <summary>Another host asked this host's run to abort (<see cref="IRunLeaseStore.RequestAbortAsync"/>).</summary>
    AbortRequested,

    /// <summary>Another host took over the lease of this host's run (a supersede); the run must end.</summary>
    Superseded,

    /// <summary>A session's lease was released: the session may be free cluster-wide.</summary>
    Released,

    /// <summary>The store connection was re-established: notifications may have been lost meanwhile.</summary>
    Reconnected,
}
