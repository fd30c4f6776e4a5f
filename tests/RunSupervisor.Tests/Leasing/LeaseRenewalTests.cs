using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>Keeping a lease: the watchdog's batched renew, and the run that ends <see cref="RunEndReason.LeaseLost"/> when it cannot.</summary>
public sealed class LeaseRenewalTests
{
    private const string Session = "s1";

    [Fact]
    public async Task Renew_RunLongerThanTheTtl_KeepsTheLeaseAndTheSessionBusyElsewhere()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle run = await a.Registry.StartAsync(Session);

        for (int i = 0; i < 12; i++)
        {
            cluster.Time.Advance(LeaseCluster.Renew);
        }

        run.IsCurrent.Should().BeTrue("a minute of renews every five seconds keeps a fifteen-second lease");
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(run.FencingToken);
        await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session)).Should().ThrowAsync<SessionBusyException>();
    }

    [Fact]
    public async Task Renew_ManyRuns_OneBatchPerInterval()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var runs = new List<RunHandle>();
        for (int i = 0; i < 20; i++)
        {
            runs.Add(await a.Registry.StartAsync("s" + i));
        }

        long before = cluster.Store.CallCount;
        cluster.Time.Advance(LeaseCluster.Renew);

        cluster.Store.CallCount.Should().Be(before + 1, "the twenty leases are renewed in one call");
        runs.Should().OnlyContain(r => r.IsCurrent);
        runs.ForEach(r => r.Dispose());
    }

    [Fact]
    public async Task Renew_LeaseKeyGone_EndsTheRunLeaseLostWithoutGrace()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);
        run.Attach(new TaskCompletionSource().Task);
        cluster.Store.RemoveLease(Session);

        cluster.Time.Advance(LeaseCluster.Renew);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        a.Registry.IsActive(Session).Should().BeFalse("a run without its lease may no longer own the session");
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("gone at renew");
        a.Registry.AbandonedCount.Should().Be(1, "its provider is still pending");
        a.LogsWithEvent("LeaseLost").Should().ContainSingle();
    }

    [Fact]
    public async Task Renew_LeaseTakenByAnotherHost_EndsTheRunLeaseLostNamingIt()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.RemoveLease(Session);
        RunLeaseAcquireResult taken = await cluster.Store.AcquireAsync(new RunLeaseRequest(Session, "c", LeaseCluster.Ttl));

        cluster.Time.Advance(LeaseCluster.Renew);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("host 'c'");
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(taken.Lease!.FencingToken, "the lost run does not release what is no longer its lease");
    }

    [Fact]
    public async Task RunAsync_LeaseLost_CallerGetsRunLeaseLostException()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        Task<int> run = a.Registry.RunAsync(Session, AsyncTestHelpers.HonourTokenAsync);
        long token = a.Registry.GetActiveRuns().Single().FencingToken;
        cluster.Store.RemoveLease(Session);

        cluster.Time.Advance(LeaseCluster.Renew);

        RunLeaseLostException lost = (await FluentActions.Awaiting(() => run.Guard()).Should().ThrowAsync<RunLeaseLostException>()).Which;
        lost.SessionId.Should().Be(Session);
        lost.FencingToken.Should().Be(token);
    }

    [Fact]
    public async Task Outage_FailClosed_EndsTheRunAtItsLocalValidityBeforeTheStoreWouldExpireIt()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        // Validity ends one TTL less the safety margin after the acquire was sent: 14 s.
        cluster.Time.Advance(LeaseCluster.Ttl - LeaseCluster.Margin - AsyncTestHelpers.Tick);
        run.IsCurrent.Should().BeTrue();
        cluster.Time.Advance(AsyncTestHelpers.Tick);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("no renew was confirmed");
        a.LogsWithEvent("LeaseRenewFailed").Should().NotBeEmpty();
    }

    [Fact]
    public async Task Outage_Hanging_RenewTimesOutAndTheRunEndsAtItsValidity()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage(hang: true);

        for (int i = 0; i < 14; i++)
        {
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost, "a store that never answers is as good as none");
    }

    [Fact]
    public async Task Outage_ShortOne_RenewAfterItKeepsTheRun()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();
        cluster.Time.Advance(LeaseCluster.Renew);
        cluster.Store.EndOutage();

        cluster.Time.Advance(LeaseCluster.Renew);
        cluster.Time.Advance(LeaseCluster.Renew);

        run.IsCurrent.Should().BeTrue("the renew after the outage confirmed the lease before its validity ran out");
    }

    [Fact]
    public async Task Outage_FailOpen_KeepsTheRunWhenRenewsFail()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        using RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        cluster.Time.Advance(TimeSpan.FromSeconds(30));

        run.IsCurrent.Should().BeTrue("failing open trades exclusivity for availability");
    }

    [Fact]
    public async Task StartAsync_StoreDown_FailClosed_ThrowsRunLeaseUnavailableAndNothingRan()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage();

        RunLeaseUnavailableException unavailable = (await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session))
            .Should().ThrowAsync<RunLeaseUnavailableException>()).Which;

        unavailable.SessionId.Should().Be(Session);
        a.Registry.ActiveCount.Should().Be(0);
        a.Ended.Should().BeEmpty();
        a.LogsWithEvent("LeaseStoreUnavailable").Should().NotBeEmpty();
    }

    [Fact]
    public async Task StartAsync_StoreHangs_FailsAfterTheAcquireTimeout()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage(hang: true);

        Task<RunHandle> start = a.Registry.StartAsync(Session).AsTask();
        cluster.Time.Advance(LeaseCluster.StoreTimeout - AsyncTestHelpers.Tick);
        start.IsCompleted.Should().BeFalse();
        cluster.Time.Advance(AsyncTestHelpers.Tick);

        await FluentActions.Awaiting(() => start.Guard()).Should().ThrowAsync<RunLeaseUnavailableException>();
        a.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_StoreDown_FailOpen_StartsUnfencedWithTheRunIdAsToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        cluster.Store.BeginOutage();

        using RunHandle run = await a.Registry.StartAsync(Session);

        run.FencingToken.Should().Be(run.RunId);
        a.LogsWithEvent("UnfencedStart").Should().ContainSingle();
        a.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public async Task StoreRestart_LeasesForgotten_RunEndsLeaseLostAndTheNextTokenIsStillLarger()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.Restart();

        cluster.Time.Advance(LeaseCluster.Renew);
        using RunHandle next = await b.Registry.StartAsync(Session);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        next.FencingToken.Should().BeGreaterThan(run.FencingToken, "tokens follow the store's clock, so a restart that forgot the counter never reissues one");
    }

    [Fact]
    public async Task CrashedHost_OtherHostTakesOverAfterTheTtlWithALargerToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle crashed = await a.Registry.StartAsync(Session);
        cluster.Store.CrashHost("a");

        cluster.Time.Advance(LeaseCluster.Ttl - AsyncTestHelpers.Tick);
        await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session)).Should().ThrowAsync<SessionBusyException>();
        cluster.Time.Advance(AsyncTestHelpers.Tick);
        using RunHandle takeover = await b.Registry.StartAsync(Session);

        takeover.FencingToken.Should().BeGreaterThan(crashed.FencingToken);
        (await crashed.Completion.Guard()).Should().Be(RunEndReason.LeaseLost, "the cut-off host stopped trusting its lease before the takeover (at 14 s)");
    }

    [Fact]
    public async Task Renew_AnswersLostWhileTheStoreStillHoldsTheLease_RunEndsAtItsValidityAndReleasesTheLease()
    {
        using var cluster = new LeaseCluster();
        var store = new UnansweredRenewsStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", store: store);
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);
        store.DropAnswers = true;

        for (int i = 0; i < 14; i++)
        {
            cluster.Time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        (await cluster.Store.GetOwnerAsync(Session)).Should().BeNull("the run that stopped trusting its lease released it, so no host waits out its time to live");
        using RunHandle next = await b.Registry.StartAsync(Session);
        next.FencingToken.Should().BeGreaterThan(run.FencingToken);
    }

    /// <summary>A store that renews, but whose answers never arrive (the caller's timeout ends each call).</summary>
    private sealed class UnansweredRenewsStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        public bool DropAnswers { get; set; }

        public override async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        {
            IReadOnlyList<RunLeaseRenewResult> results = await Inner.RenewAsync(leases, ttl, cancellationToken);
            if (DropAnswers)
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
            }

            return results;
        }
    }
}
