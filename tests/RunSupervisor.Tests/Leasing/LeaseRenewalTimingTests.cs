using System.Globalization;
using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>The renew batch in detail: when it is sent, what its answers do to each run, and what a lost lease leaves behind.</summary>
public sealed class LeaseRenewalTimingTests
{
    private const string Session = "s1";

    [Fact]
    public async Task Renew_AfterASuccessfulRenew_ValidityCountsFromThatRenewsSendTime()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Time.Advance(LeaseCluster.Renew);
        cluster.Store.BeginOutage();

        // Confirmed by the renew sent at 5 s: valid until 5 s + 15 s - 1 s = 19 s.
        cluster.Time.Advance(TimeSpan.FromSeconds(14) - AsyncTestHelpers.Tick);
        run.IsCurrent.Should().BeTrue();
        cluster.Time.Advance(AsyncTestHelpers.Tick);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Be(
            "no renew was confirmed within 00:00:14 (lease time to live less the safety margin): the store did not answer in time");
    }

    [Fact]
    public void LeaseValidity_SystemClock_MarginCountsAsAtLeastOneSystemTick()
    {
        // A reading of the system tick may lag its instant by up to one tick, so a run's end may come that much after
        // send + validity: the margin covers it. An exact clock needs no allowance.
        using var defaultMargin = new ActiveRunRegistry(new RunSupervisorOptions(), TimeProvider.System, leaseStore: new InMemoryRunLeaseStore());
        using var noMargin = new ActiveRunRegistry(LeaseOptions(margin: TimeSpan.Zero), TimeProvider.System, leaseStore: new InMemoryRunLeaseStore());
        using var noMarginExact = new ActiveRunRegistry(LeaseOptions(margin: TimeSpan.Zero), new Microsoft.Extensions.Time.Testing.FakeTimeProvider(), leaseStore: new InMemoryRunLeaseStore());

        defaultMargin.LeaseValidity.Should().Be(TimeSpan.FromSeconds(14), "a 1 s margin already covers the tick");
        noMargin.LeaseValidity.Should().Be(TimeSpan.FromSeconds(15) - RegistryClock.SystemTickResolution);
        noMarginExact.LeaseValidity.Should().Be(TimeSpan.FromSeconds(15));
    }

    [Fact]
    public void Constructor_SystemClockMarginBelowOneTickLeavesLessThanTwoRenewIntervals_ThrowsOptionsValidationException()
    {
        // Valid for the validator (499 ms < 1 s / 2), but with the margin taken as one tick the validity is 984 ms:
        // one lost renew would cost the lease.
        RunSupervisorOptions options = LeaseOptions(margin: TimeSpan.Zero, ttl: TimeSpan.FromSeconds(1), renew: TimeSpan.FromMilliseconds(499));

        FluentActions.Invoking(() => new ActiveRunRegistry(options, TimeProvider.System, leaseStore: new InMemoryRunLeaseStore()))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*RenewInterval*at least 00:00:00.0160000 on TimeProvider.System*");
        using var exact = new ActiveRunRegistry(options, new Microsoft.Extensions.Time.Testing.FakeTimeProvider(), leaseStore: new InMemoryRunLeaseStore());
        using var withoutStore = new ActiveRunRegistry(options, TimeProvider.System);
    }

    [Fact]
    public async Task Renew_AcquireAnsweredLateWithinItsValidity_FirstRenewComesOneIntervalAfterTheSend()
    {
        // Trusted until 14 s after the send; the answer comes at 10 s. Counted from the answer, the first renew would be
        // at 15 s, after the validity; counted from the send it is due at once.
        using var cluster = new LeaseCluster();
        var store = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.AcquireTimeout = TimeSpan.FromSeconds(15), store);
        Task<RunHandle> start = a.Registry.StartAsync(Session).AsTask();
        cluster.Time.Advance(TimeSpan.FromSeconds(10));
        store.Open();
        RunHandle run = await start.Guard();

        cluster.Time.Advance(TimeSpan.FromSeconds(4));

        a.Ended.Should().BeEmpty("a renew was sent before the validity ended");
        run.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task Renew_ValidityEndsWhenARenewIsDue_EveryExpiredRunEndsAndNoneIsRenewed()
    {
        // Time to live 16 s less a 1 s margin: the validity ends at 15 s, exactly when a renew is due.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.LeaseTtl = TimeSpan.FromSeconds(16));
        RunHandle first = await a.Registry.StartAsync("s1");
        RunHandle second = await a.Registry.StartAsync("s2");
        cluster.Store.BeginOutage();
        cluster.Time.Advance(TimeSpan.FromSeconds(10));
        cluster.Store.EndOutage();
        DateTimeOffset lastFailure = cluster.Time.GetUtcNow();

        cluster.Time.Advance(TimeSpan.FromSeconds(5));

        (await first.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        (await second.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        a.Registry.GetLeaseHealth().LastStoreFailureAt.Should().Be(lastFailure, "no renew was sent for runs that had already expired");
        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        cluster.Store.LeaseCount.Should().Be(0, "the expired runs' leases were not renewed, so the store let them lapse at 16 s");
    }

    [Fact]
    public async Task Renew_NoLeasedRunLeft_StopsUntilTheNextLeaseWhoseFirstRenewIsOneIntervalLater()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle first = await a.Registry.StartAsync(Session);
        cluster.Time.Advance(TimeSpan.FromSeconds(1));
        first.Dispose();

        // The renew due at 5 s finds no leased run: renewing stops there. (The clock stops at 5 s, so the watchdog's
        // tick reads that instant rather than a later one.)
        cluster.Time.Advance(TimeSpan.FromSeconds(4));
        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        long calls = cluster.Store.CallCount;
        using RunHandle next = await a.Registry.StartAsync(Session);
        cluster.Time.Advance(LeaseCluster.Renew - AsyncTestHelpers.Tick);
        long beforeDue = cluster.Store.CallCount;
        cluster.Time.Advance(AsyncTestHelpers.Tick);

        beforeDue.Should().Be(calls + 1, "only the acquire: the new lease's first renew comes one interval after it, at 12 s");
        cluster.Store.CallCount.Should().Be(calls + 2);
    }

    [Fact]
    public async Task Renew_FailOpenWithAnUnfencedRun_RenewsOnlyTheLeasedRuns()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        cluster.Store.BeginOutage();
        using RunHandle unfenced = await a.Registry.StartAsync("s1");
        cluster.Store.EndOutage();
        using RunHandle leased = await a.Registry.StartAsync("s2");

        cluster.Time.Advance(LeaseCluster.Renew);

        a.LogsWithEvent("LeaseRenewFailed").Should().BeEmpty("the unfenced run has no lease to renew");
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
        cluster.Time.Advance(LeaseCluster.Ttl - LeaseCluster.Renew);
        (await cluster.Store.GetOwnerAsync("s2"))!.FencingToken.Should().Be(leased.FencingToken, "the renews kept the lease past its first time to live");
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public async Task Renew_StoreAnswersTheWrongNumberOfResults_AppliesThoseThatMatchWithoutFailing(int extra)
    {
        using var cluster = new LeaseCluster();
        var store = new ScriptedStore(cluster.Store) { RenewResults = r => extra < 0 ? [r[0]] : [.. r, r[0]] };
        LeaseCluster.Host a = cluster.AddHost("a", store: store);
        using RunHandle first = await a.Registry.StartAsync("s1");
        using RunHandle second = await a.Registry.StartAsync("s2");

        cluster.Time.Advance(LeaseCluster.Renew);

        a.LogsWithEvent("LeaseRenewFailed").Should().BeEmpty();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
        first.IsCurrent.Should().BeTrue();
        second.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task Renew_TakenOverWithoutAnOwner_EndsTheRunLeaseLostSayingAnotherHostTookIt()
    {
        using var cluster = new LeaseCluster();
        var store = new ScriptedStore(cluster.Store)
        {
            RenewResults = r => r.Select(x => new RunLeaseRenewResult(x.Lease, RunLeaseRenewStatus.TakenOver)).ToList(),
        };
        LeaseCluster.Host a = cluster.AddHost("a", store: store);
        RunHandle run = await a.Registry.StartAsync(Session);

        cluster.Time.Advance(LeaseCluster.Renew);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Be("the lease was taken over by another host");
        a.LogsWithEvent("LeaseLost").Should().ContainSingle().Which.Message.Should().Be(string.Create(
            CultureInfo.InvariantCulture,
            $"Run {run.RunId} for session 's1' (fencing token {run.FencingToken}) lost its lease and left the registry: the lease was taken over by another host."));
    }

    [Fact]
    public async Task Renew_AbortFlagWithoutAReason_AbortsOffTheRenewingThreadWithTheDefaultDetail()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", store: new ScriptedStore(cluster.Store) { Deaf = true });
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);
        int advancingThread = Environment.CurrentManagedThreadId;
        int advancing = 0;
        var ranInsideAdvance = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        run.AbortToken.Register(() => ranInsideAdvance.TrySetResult(Environment.CurrentManagedThreadId == advancingThread && Volatile.Read(ref advancing) == 1));
        (await b.Registry.TryAbortAsync(Session, run.FencingToken, reason: null)).Should().BeTrue();

        Volatile.Write(ref advancing, 1);
        cluster.Time.Advance(LeaseCluster.Renew);
        Volatile.Write(ref advancing, 0);

        (await ranInsideAdvance.Task.Guard()).Should().BeFalse("an abort the renew carries runs the token's callbacks on the pool, not on the thread that renewed");
        run.Dispose();
        (await run.Completion.Guard()).Should().Be(RunEndReason.Aborted);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("aborted from another host");
    }

    [Fact]
    public async Task Renew_LeaseLost_TheLostLeaseIsNeverReleased()
    {
        using var cluster = new LeaseCluster();
        var store = new ScriptedStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", store: store);
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.RemoveLease(Session);

        cluster.Time.Advance(LeaseCluster.Renew);
        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        run.Dispose();

        store.Releases.Should().Be(0, "the lease may be another host's by now: releasing it would be a stale write");
        a.Registry.GetLeaseHealth().LeasesLost.Should().Be(1);
    }

    [Fact]
    public async Task Renew_AnswerArrivesAfterTheRunLeft_NotCountedNorLoggedAsALostLease()
    {
        using var cluster = new LeaseCluster();
        var store = new ScriptedStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", store: store);
        RunHandle run = await a.Registry.StartAsync(Session);
        store.HoldRenews();
        cluster.Time.Advance(LeaseCluster.Renew);
        run.Dispose();

        // The renew now finds the released lease missing, for a run that already completed; answered off the test's
        // synchronization context, so the registry handles the answer before the call returns.
        await Task.Run(store.AnswerRenews);

        (await run.Completion.Guard()).Should().Be(RunEndReason.Completed);
        store.RenewsAnswered.Should().Be(1);
        a.LogsWithEvent("LeaseLost").Should().BeEmpty();
        a.Registry.GetLeaseHealth().LeasesLost.Should().Be(0);
        a.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Completed);
    }

    /// <summary>
    /// A store in front of the shared one that can hold renews until the test answers them and rewrite renew answers
    /// (counting releases and dropping notifications come with <see cref="ForwardingLeaseStore"/>).
    /// </summary>
    [Fact]
    public async Task Renew_OneRenewNeverAnsweredWithAStoreTimeoutLongerThanTheRenewInterval_TheNextRenewIsSentAndTheRunKeepsItsLease()
    {
        // AcquireTimeout 10 s is valid (at most the time to live), but a renew waiting that long would hold back the one
        // due at 10 s, and the validity (14 s) would end with no renew confirmed since the start.
        using var cluster = new LeaseCluster();
        var store = new FirstRenewHangsStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.AcquireTimeout = TimeSpan.FromSeconds(10), store: store);
        using RunHandle run = await a.Registry.StartAsync(Session);

        // One second at a time: the clock jumps to the end of an advance before its timers fire, so a renew sent in a
        // longer one would count its timeout from there.
        for (int second = 1; second <= 8; second++)
        {
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
        }

        (await AsyncTestHelpers.WaitUntilAsync(() => a.LogsWithEvent("LeaseRenewFailed").Any())).Should().BeTrue("the renew at 5 s is given up at 7.5 s");
        store.Renews.Should().Be(1);
        for (int second = 9; second <= 16; second++)
        {
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
        }

        store.Renews.Should().Be(3, "the renews at 10 s and 15 s are sent: the one at 5 s was given up at half the renew interval");
        run.IsCurrent.Should().BeTrue("only one renew was lost");
        a.Ended.Should().BeEmpty();
    }

    private sealed class ScriptedStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        private TaskCompletionSource? _renewGate;
        private int _renewsAnswered;

        public Func<IReadOnlyList<RunLeaseRenewResult>, IReadOnlyList<RunLeaseRenewResult>>? RenewResults { get; init; }

        public int RenewsAnswered => Volatile.Read(ref _renewsAnswered);

        /// <summary>Holds every renew from now on, until <see cref="AnswerRenews"/>, whose caller runs the held renews' continuations.</summary>
        public void HoldRenews() => _renewGate = new TaskCompletionSource();

        public void AnswerRenews()
        {
            TaskCompletionSource? gate = _renewGate;
            _renewGate = null;
            gate?.SetResult();
        }

        public override async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        {
            if (_renewGate is { } gate)
            {
                await gate.Task.ConfigureAwait(false);
            }

            IReadOnlyList<RunLeaseRenewResult> results = await Inner.RenewAsync(leases, ttl, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _renewsAnswered);
            return RenewResults is { } rewrite ? rewrite(results) : results;
        }
    }

    /// <summary>A store whose first renew is never answered (it waits for its caller to give up).</summary>
    private sealed class FirstRenewHangsStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        private int _renews;

        public int Renews => Volatile.Read(ref _renews);

        public override async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _renews) == 1)
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
            }

            return await Inner.RenewAsync(leases, ttl, cancellationToken).ConfigureAwait(false);
        }
    }

    [Fact]
    public async Task Renew_LeaseConfirmedWhileARenewBatchIsInFlight_NotLostWhileTheStoreAnswersEveryCallInTime()
    {
        // Valid options: validity 11 s > two renew intervals (10 s); AcquireTimeout 4 s <= TTL; renew timeout 2.5 s.
        using var cluster = new LeaseCluster();
        var store = new SlowStore(cluster.Store, cluster.Time);
        LeaseCluster.Host b = cluster.AddHost("b", o =>
        {
            o.Lease.LeaseTtl = TimeSpan.FromSeconds(12);
            o.Lease.AcquireTimeout = TimeSpan.FromSeconds(4);
        }, store);

        using RunHandle other = await b.Registry.StartAsync("other");   // t = 0: renews due at 5 s
        await StepAsync(cluster, TimeSpan.FromSeconds(2));

        // t = 2 s: a start whose acquire answers in 3.1 s (within its 4 s timeout): confirmed at 5.1 s, valid until 13 s.
        store.AcquireLatency = TimeSpan.FromSeconds(3.1);
        Task<RunHandle> starting = b.Registry.StartAsync(Session).AsTask();
        store.RenewLatency = TimeSpan.FromSeconds(2.4);                   // every renew answers within its 2.5 s timeout
        await StepAsync(cluster, TimeSpan.FromSeconds(3.2));
        starting.IsCompletedSuccessfully.Should().BeTrue();
        RunHandle run = await starting;

        await StepAsync(cluster, TimeSpan.FromSeconds(10));

        run.IsCurrent.Should().BeTrue("every store call was answered within its timeout; ended: {0}",
            string.Join("; ", b.Ended.Select(e => $"{e.SessionId}: {e.Reason} ({e.Detail})")));
        store.FailedCalls.Should().Be(0);
    }

    private static async Task StepAsync(LeaseCluster cluster, TimeSpan by)
    {
        // In steps: the store's latencies are timers created by earlier steps' callbacks, which one jump would skip.
        TimeSpan step = TimeSpan.FromMilliseconds(100);
        for (TimeSpan done = TimeSpan.Zero; done < by; done += step)
        {
            cluster.Time.Advance(step);
            await Task.Yield();
        }
    }

    /// <summary>A store whose acquires and renews answer after a latency on the fake clock.</summary>
    private sealed class SlowStore(IRunLeaseStore inner, TimeProvider time) : ForwardingLeaseStore(inner)
    {
        private int _failed;

        public TimeSpan AcquireLatency { get; set; }

        public TimeSpan RenewLatency { get; set; }

        public int FailedCalls => Volatile.Read(ref _failed);

        public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
        {
            try
            {
                if (AcquireLatency > TimeSpan.Zero)
                {
                    await Task.Delay(AcquireLatency, time, cancellationToken);
                }

                return await Inner.AcquireAsync(request, cancellationToken);
            }
            catch
            {
                Interlocked.Increment(ref _failed);
                throw;
            }
        }

        public override async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        {
            try
            {
                if (RenewLatency > TimeSpan.Zero)
                {
                    await Task.Delay(RenewLatency, time, cancellationToken);
                }

                return await Inner.RenewAsync(leases, ttl, cancellationToken);
            }
            catch
            {
                Interlocked.Increment(ref _failed);
                throw;
            }
        }
    }

    private static RunSupervisorOptions LeaseOptions(TimeSpan margin, TimeSpan? ttl = null, TimeSpan? renew = null)
    {
        var options = new RunSupervisorOptions();
        options.Lease.LeaseSafetyMargin = margin;
        options.Lease.LeaseTtl = ttl ?? options.Lease.LeaseTtl;
        options.Lease.RenewInterval = renew ?? options.Lease.RenewInterval;
        options.Lease.AcquireTimeout = TimeSpan.FromMilliseconds(Math.Min(options.Lease.AcquireTimeout.TotalMilliseconds, options.Lease.LeaseTtl.TotalMilliseconds));
        return options;
    }
}
