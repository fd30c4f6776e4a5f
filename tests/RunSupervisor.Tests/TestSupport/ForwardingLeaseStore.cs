using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// A lease store in front of another that forwards every call, counts the releases, and can drop its notifications
/// (<see cref="Deaf"/>, a lost subscription). A test double derived from it overrides only the calls it changes (holds,
/// counts, fails or rewrites) and the rest reach the shared store unchanged.
/// </summary>
internal class ForwardingLeaseStore(IRunLeaseStore inner) : IRunLeaseStore
{
    // A subscription that was never made: what a deaf store hands out.
    private static readonly IAsyncDisposable NoSubscription = new Nothing();

    private int _releases;

    /// <summary>Gets a value indicating whether the store's notifications never arrive: <see cref="SubscribeAsync"/> subscribes nothing.</summary>
    public bool Deaf { get; init; }

    /// <summary>Gets how many releases reached the store.</summary>
    public int Releases => Volatile.Read(ref _releases);

    /// <summary>Gets the store the calls are forwarded to.</summary>
    protected IRunLeaseStore Inner { get; } = inner;

    public virtual ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
        => Inner.AcquireAsync(request, cancellationToken);

    public virtual ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        => Inner.RenewAsync(leases, ttl, cancellationToken);

    public virtual ValueTask<bool> ReleaseAsync(RunLease lease, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _releases);
        return Inner.ReleaseAsync(lease, cancellationToken);
    }

    public virtual ValueTask<bool> RequestAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken = default)
        => Inner.RequestAbortAsync(sessionId, expectedFencingToken, reason, cancellationToken);

    public virtual ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
        => Inner.GetOwnerAsync(sessionId, cancellationToken);

    public virtual ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default)
        => Deaf ? new(NoSubscription) : Inner.SubscribeAsync(hostId, observer, cancellationToken);

    private sealed class Nothing : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => default;
    }
}
