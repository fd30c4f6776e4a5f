namespace RunSupervisor.Leasing;

/// <summary>A snapshot of how a registry's lease store is doing, for health checks (<see cref="ActiveRunRegistry.GetLeaseHealth"/>).</summary>
public sealed class RunLeaseHealth
{
    internal RunLeaseHealth(bool hasStore, bool isStoreAvailable, DateTimeOffset? lastStoreFailureAt, long leasesLost, long unfencedStarts)
    {
        HasStore = hasStore;
        IsStoreAvailable = isStoreAvailable;
        LastStoreFailureAt = lastStoreFailureAt;
        LeasesLost = leasesLost;
        UnfencedStarts = unfencedStarts;
    }

    /// <summary>Gets a value indicating whether the registry has a lease store at all; without one every other value is its default.</summary>
    public bool HasStore { get; }

    /// <summary>Gets a value indicating whether the store's most recent call succeeded, or the store has since said its connection was restored (true before the first call).</summary>
    public bool IsStoreAvailable { get; }

    /// <summary>Gets when a store call last failed or timed out; <see langword="null"/> if none has.</summary>
    public DateTimeOffset? LastStoreFailureAt { get; }

    /// <summary>Gets how many runs of this registry lost their lease (expired locally, gone, taken over, or superseded from another host) since it was created.</summary>
    public long LeasesLost { get; }

    /// <summary>Gets how many runs started without a lease because the store was unreachable and the registry fails open.</summary>
    public long UnfencedStarts { get; }
}
