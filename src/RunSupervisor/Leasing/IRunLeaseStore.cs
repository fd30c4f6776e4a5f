namespace RunSupervisor.Leasing;

/// <summary>
/// A store of run leases shared by every host that serves the same sessions: it admits one run per session across
/// hosts and mints the fencing token each run carries. <see cref="ActiveRunRegistry"/> calls it; applications only
/// choose one (<see cref="InMemoryRunLeaseStore"/> for tests and one-process setups, RunSupervisor.Redis across hosts).
/// </summary>
/// <remarks>
/// <para>An implementation must be thread-safe. Each operation is atomic in the store: two acquires of one session can
/// never both succeed, a renew or release of a lease whose token is no longer the session's changes nothing, and every
/// acquire mints a fencing token strictly larger than any the session had before, including across a restart of the
/// store that lost its data (so a plain counter is not enough: take <c>max(previous + 1, store time in µs)</c>).</para>
/// <para>The registry gives every call its own timeout through the cancellation token and treats any exception other
/// than that cancellation as "the store is unavailable". An implementation throws; it does not return a made-up answer.</para>
/// </remarks>
public interface IRunLeaseStore
{
    /// <summary>Takes the session's lease for a new run, or reports who holds it.</summary>
    /// <param name="request">The session, the host, the lease's time to live, and whether to take over a held lease.</param>
    /// <param name="cancellationToken">Cancels the call (the registry's acquire timeout).</param>
    /// <returns>The new lease with its fencing token, or the current owner when the session is held and the request does not supersede.</returns>
    ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Renews a batch of leases in one round trip (pipelined where the store allows), each for <paramref name="ttl"/>
    /// from when the store handles it. A lease whose key is gone or holds another token is not touched and comes back lost.
    /// </summary>
    /// <param name="leases">The leases this host holds.</param>
    /// <param name="ttl">The new time to live of each lease.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per lease, in the order given.</returns>
    ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default);

    /// <summary>
    /// Releases a lease if it is still the session's (compare and delete), and tells every host the session is free
    /// (<see cref="RunLeaseNotificationKind.Released"/>) if any host asked about it while the lease held it: an
    /// <see cref="AcquireAsync"/> it refused, or <see cref="GetOwnerAsync"/>. A release nobody asked about may go
    /// unannounced, since no host waits for it; a host that waits without asking finds the session free by its poll.
    /// </summary>
    /// <param name="lease">The lease.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> if the lease was the session's and is gone; <see langword="false"/> if it had already expired or been taken over.</returns>
    ValueTask<bool> ReleaseAsync(RunLease lease, CancellationToken cancellationToken = default);

    /// <summary>
    /// Asks the session's owner, on whatever host, to abort its run: sets an abort flag on the lease (read by the
    /// owner's next renew) and notifies the owner's host (<see cref="RunLeaseNotificationKind.AbortRequested"/>).
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="expectedFencingToken">When given, only the lease with this token is asked.</param>
    /// <param name="reason">Why; handed to the owner.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> if a matching lease was found and flagged.</returns>
    ValueTask<bool> RequestAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken = default);

    /// <summary>Reads who holds the session's lease, and marks a held session as asked about, so its release is announced.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The owner, or <see langword="null"/> when the session is free cluster-wide.</returns>
    ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Subscribes a host to its notifications: aborts and supersedes of its own leases, and the announced releases of
    /// every session (see <see cref="ReleaseAsync"/>).
    /// A lost notification is recovered by the registry's renew and poll, so delivery may be best-effort.
    /// </summary>
    /// <param name="hostId">The host.</param>
    /// <param name="observer">Receives the notifications, on any thread; it must not block.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Ends the subscription when disposed.</returns>
    ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default);
}
