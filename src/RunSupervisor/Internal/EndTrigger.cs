namespace RunSupervisor;

/// <summary>What made a run leave the registry; <see cref="RunEnds.Decide(RunEntry, EndTrigger)"/> turns it into the reason.</summary>
internal enum EndTrigger
{
    /// <summary>The attached provider task settled.</summary>
    ProviderSettled,

    /// <summary>The handle was disposed.</summary>
    Released,

    /// <summary>The eviction instant came (watchdog), or a drain or a zero grace period forced it.</summary>
    Evicted,

    /// <summary>A newer run of the same session replaced it.</summary>
    Superseded,

    /// <summary>A foreground start replaced it, a background run.</summary>
    Preempted,

    /// <summary>The registry was disposed.</summary>
    Disposed,

    /// <summary>The run's lease expired, was taken over, or could not be confirmed in time.</summary>
    LeaseLost,

    /// <summary>A leased start did not get its lease (held elsewhere, store unreachable, caller cancelled): it never ran.</summary>
    Withdrawn,
}
