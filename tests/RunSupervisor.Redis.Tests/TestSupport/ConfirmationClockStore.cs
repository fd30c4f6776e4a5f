using System.Diagnostics;
using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// Passes every call to the store it wraps and remembers when the last answered acquire or renew was sent: a leased run
/// stays valid for the lease's time to live less the safety margin from that moment, so a real-time test can bound when
/// a run whose renewals fail must end, whatever the machine's load did to the renew timer or to taking the store down.
/// </summary>
internal sealed class ConfirmationClockStore(IRunLeaseStore inner) : IRunLeaseStore
{
    private long _lastConfirmedSend;

    /// <summary>Gets the <see cref="Stopwatch"/> timestamp at which the last answered acquire or renew was sent, or 0.</summary>
    public long LastConfirmedSend => Volatile.Read(ref _lastConfirmedSend);

    public async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        long sent = Stopwatch.GetTimestamp();
        RunLeaseAcquireResult result = await inner.AcquireAsync(request, cancellationToken);
        if (result.Lease is not null)
        {
            Confirmed(sent);
        }

        return result;
    }

    public async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        long sent = Stopwatch.GetTimestamp();
        IReadOnlyList<RunLeaseRenewResult> results = await inner.RenewAsync(leases, ttl, cancellationToken);
        Confirmed(sent);
        return results;
    }

    public ValueTask<bool> ReleaseAsync(RunLease lease, CancellationToken cancellationToken = default) => inner.ReleaseAsync(lease, cancellationToken);

    public ValueTask<bool> RequestAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken = default) =>
        inner.RequestAbortAsync(sessionId, expectedFencingToken, reason, cancellationToken);

    public ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default) => inner.GetOwnerAsync(sessionId, cancellationToken);

    public ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default) =>
        inner.SubscribeAsync(hostId, observer, cancellationToken);

    private void Confirmed(long sent)
    {
        // Answers can come back out of order: keep the latest send.
        long seen = Volatile.Read(ref _lastConfirmedSend);
        while (sent > seen)
        {
            long found = Interlocked.CompareExchange(ref _lastConfirmedSend, sent, seen);
            if (found == seen)
            {
                return;
            }

            seen = found;
        }
    }
}
