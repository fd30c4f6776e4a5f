using System.Globalization;
using Microsoft.Extensions.Logging;
using RunSupervisor.Leasing;

namespace RunSupervisor;

/// <summary>Lease renewal across hosts: the watchdog's batched renew and the local validity that ends a run whose lease cannot be confirmed in time.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>
    /// The watchdog's lease work, on its tick: ends the runs whose local validity has run out (failing closed), starts
    /// the batched renew when due (at most one in flight, never awaited here), and says when to look again.
    /// </summary>
    /// <returns>The next instant lease work is due; <see cref="long.MaxValue"/> for none.</returns>
    private long LeaseTick(long now)
    {
        if (_leaseStore is null)
        {
            return long.MaxValue;
        }

        long nextPoll = PollTick(now);
        return Math.Min(nextPoll, RenewTick(now));
    }

    /// <summary>The renew half of <see cref="LeaseTick(long)"/>.</summary>
    private long RenewTick(long now)
    {
        long due = Volatile.Read(ref _nextRenewTicks);
        if (due == long.MaxValue)
        {
            return long.MaxValue;
        }

        long confirmedBefore = Volatile.Read(ref _leasesConfirmed);
        bool renewDue = now >= due;
        List<RunEntry>? expired = null;
        List<RunEntry>? renew = null;
        long nextValidityEnd = long.MaxValue;
        foreach (RunEntry entry in _table)
        {
            if (entry.Lease is null || entry.HasEnded)
            {
                continue;
            }

            long validUntil = entry.LeaseValidUntilTicks;
            if (!_failOpen)
            {
                if (validUntil <= now)
                {
                    (expired ??= []).Add(entry);
                    continue;
                }

                nextValidityEnd = Math.Min(nextValidityEnd, validUntil);
            }

            if (renewDue)
            {
                (renew ??= []).Add(entry);
            }
        }

        if (expired is not null)
        {
            string detail = string.Create(CultureInfo.InvariantCulture, $"no renew was confirmed within {TimeSpan.FromTicks(_leaseValidTicks)} (lease time to live less the safety margin): the store did not answer in time");
            foreach (RunEntry entry in expired)
            {
                LoseLease(entry, "expired", detail);
            }
        }

        if (renewDue)
        {
            if (renew is null && expired is null && nextValidityEnd == long.MaxValue)
            {
                // No leased run left: renewing stops until the next lease is taken. A lease confirmed while this tick
                // looked found renewing armed and left it so: then renewing goes on.
                Interlocked.Exchange(ref _nextRenewTicks, long.MaxValue);
                if (Interlocked.Read(ref _leasesConfirmed) == confirmedBefore)
                {
                    return long.MaxValue;
                }

                Interlocked.CompareExchange(ref _nextRenewTicks, now + _renewInterval.Ticks, long.MaxValue);
                return Volatile.Read(ref _nextRenewTicks);
            }

            Volatile.Write(ref _nextRenewTicks, now + _renewInterval.Ticks);
            if (renew is not null)
            {
                // Asked for before the flag is tried: a batch in flight was sent before this one came due and may not
                // hold every lease of this tick (one confirmed since), so it has this one sent as it answers, not a whole
                // interval later.
                Interlocked.Exchange(ref _renewAgain, 1);
                if (Interlocked.CompareExchange(ref _renewInFlight, 1, 0) == 0)
                {
                    Volatile.Write(ref _renewAgain, 0);
                    _ = RenewAsync(renew, now);
                }
            }
        }

        return Math.Min(nextValidityEnd, Volatile.Read(ref _nextRenewTicks));
    }

    /// <summary>Gets how long a batched renew waits for the store: <see cref="RunLeaseOptions.AcquireTimeout"/>, at most half the renew interval.</summary>
    private TimeSpan RenewTimeout => _storeTimeout < _renewInterval / 2 ? _storeTimeout : _renewInterval / 2;

    /// <summary>One batched renew of this host's leases; its answers extend each run's validity, or end it, or abort it.</summary>
    private async Task RenewAsync(List<RunEntry> entries, long sentTicks)
    {
        try
        {
            var leases = new RunLease[entries.Count];
            for (int i = 0; i < leases.Length; i++)
            {
                leases[i] = entries[i].Lease!;
            }

            IReadOnlyList<RunLeaseRenewResult> results;
            // Given up by half the renew interval at the latest: a batch still in flight at the next renew instant would
            // hold that one back (one batch at a time), and a single lost renew would then cost every lease whose
            // validity window fits just two renew intervals, whatever AcquireTimeout allows.
            using (StoreTimeout timeout = new(RenewTimeout, _clock.TimeProvider, CancellationToken.None))
            {
                results = await _leaseStore!.RenewAsync(leases, _leaseTtl, timeout.Token).ConfigureAwait(false);
            }

            StoreSucceeded();
            Metrics.RecordRenewBatch(TimeSpan.FromTicks(NowTicks() - sentTicks));
            long validUntil = sentTicks + _leaseValidTicks;
            for (int i = 0; i < entries.Count && i < results.Count; i++)
            {
                RunEntry entry = entries[i];
                RunLeaseRenewResult result = results[i];
                switch (result.Status)
                {
                    case RunLeaseRenewStatus.Renewed:
                        entry.LeaseValidUntilTicks = validUntil;
                        if (result.AbortRequested)
                        {
                            Abort(entry, result.AbortReason ?? "aborted from another host", cancelOnThisThread: false);
                        }

                        break;
                    case RunLeaseRenewStatus.Missing:
                        LoseLease(entry, "missing", "the lease was gone at renew: it expired in the store, or the store lost it");
                        break;
                    default:
                        LoseLease(entry, "taken_over", result.CurrentOwner is { } owner
                            ? string.Create(CultureInfo.InvariantCulture, $"the lease was taken over by host '{owner.HostId}' (fencing token {owner.FencingToken})")
                            : "the lease was taken over by another host");
                        break;
                }
            }
        }
#pragma warning disable CA1031 // A failed renew costs nothing yet: each run keeps its lease until its local validity ends, when the watchdog ends it.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            StoreFailed("renew");
            _logger.LeaseRenewFailed(entries.Count, ex);
        }
        finally
        {
            Interlocked.Exchange(ref _renewInFlight, 0);

            // A batch came due while this one was in flight: it is sent now. Looked at after the flag is cleared, paired
            // with RenewTick, which asks and then tries the flag: one of the two sends it.
            if (Volatile.Read(ref _renewAgain) != 0 && !IsDisposed)
            {
                DueNow(ref _nextRenewTicks);
            }
        }
    }
}
