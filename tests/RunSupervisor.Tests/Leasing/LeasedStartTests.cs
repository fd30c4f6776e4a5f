using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>Starting runs through a lease store: one active run per session across hosts, and what each host sees.</summary>
public sealed class LeasedStartTests
{
    private const string Session = "s1";

    [Fact]
    public async Task StartAsync_IdleSession_TakesTheLeaseAndCarriesItsFencingToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");

        using RunHandle run = await a.Registry.StartAsync(Session);

        RunLeaseInfo? owner = await cluster.Store.GetOwnerAsync(Session);
        owner.Should().NotBeNull();
        owner!.HostId.Should().Be("a");
        run.FencingToken.Should().Be(owner.FencingToken).And.NotBe(run.RunId, "a leased run's token comes from the store");
        a.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.FencingToken.Should().Be(owner.FencingToken);
    }

    [Fact]
    public async Task StartAsync_SessionHeldByAnotherHost_ThrowsSessionBusyNamingTheOwner()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle run = await a.Registry.StartAsync(Session);

        SessionBusyException busy = (await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session))
            .Should().ThrowAsync<SessionBusyException>()).Which;

        busy.OwnerHostId.Should().Be("a");
        busy.FencingToken.Should().Be(run.FencingToken);
        b.Registry.ActiveCount.Should().Be(0);
        b.Ended.Should().BeEmpty("a start refused by the store never appeared as a run");
        b.LogsWithEvent("RunStarted").Should().BeEmpty();
        b.LogsWithEvent("LeaseHeldElsewhere").Should().ContainSingle();
    }

    [Fact]
    public async Task StartAsync_LocallyBusy_SessionBusyCarriesTheTokenAndNoHost()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using RunHandle run = await a.Registry.StartAsync(Session);
        long calls = cluster.Store.CallCount;

        SessionBusyException busy = (await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session))
            .Should().ThrowAsync<SessionBusyException>()).Which;

        busy.OwnerHostId.Should().BeNull("the owner is this process");
        busy.FencingToken.Should().Be(run.FencingToken);
        busy.RunId.Should().Be(run.RunId);
        cluster.Store.CallCount.Should().Be(calls, "a local refusal settles without asking the store");
    }

    [Fact]
    public async Task Dispose_LeasedRun_ReleasesTheLeaseSoAnotherHostStartsWithALargerToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle first = await a.Registry.StartAsync(Session);
        long firstToken = first.FencingToken;

        first.Dispose();
        cluster.Store.LeaseCount.Should().Be(0);
        using RunHandle second = await b.Registry.StartAsync(Session);

        second.FencingToken.Should().BeGreaterThan(firstToken);
        (await first.Completion).Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task StartAsync_SameHostAgainAfterRelease_StrictlyIncreasingTokens()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var tokens = new List<long>();

        for (int i = 0; i < 5; i++)
        {
            using RunHandle run = await a.Registry.StartAsync(Session);
            tokens.Add(run.FencingToken);
        }

        tokens.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task StartAsync_Wait_AdmittedWhenTheRemoteRunIsReleased()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);

        ValueTask<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) });
        waiting.IsCompleted.Should().BeFalse();
        remote.Dispose();

        using RunHandle admitted = await waiting.AsTask().Guard();
        admitted.FencingToken.Should().BeGreaterThan(remote.FencingToken);
        (await cluster.Store.GetOwnerAsync(Session))!.HostId.Should().Be("b");
    }

    [Fact]
    public async Task StartAsync_WaitWhileTheOwnerCrashed_AdmittedByThePollOnceTheLeaseExpires()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        cluster.Store.CrashHost("a");

        ValueTask<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) });
        cluster.Time.Advance(LeaseCluster.Ttl - LeaseCluster.Poll);
        waiting.IsCompleted.Should().BeFalse("the crashed host's lease is still live in the store");
        for (int i = 0; i < 4 && !waiting.IsCompleted; i++)
        {
            cluster.Time.Advance(LeaseCluster.Poll);
            await Task.Yield();
        }

        using RunHandle admitted = await waiting.AsTask().Guard();
        admitted.FencingToken.Should().BeGreaterThan(remote.FencingToken);
    }

    [Fact]
    public async Task StartAsync_WaitBeyondItsQueueTimeout_ThrowsRunQueueTimeout()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle remote = await a.Registry.StartAsync(Session);

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(8) }).AsTask();
        for (int i = 0; i < 4 && !waiting.IsCompleted; i++)
        {
            cluster.Time.Advance(LeaseCluster.Poll);
            await Task.Yield();
        }

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>();
        b.Registry.ActiveCount.Should().Be(0);
        remote.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_WaitCancelled_ThrowsOperationCanceledAndNeverRuns()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        using var cts = new CancellationTokenSource();

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }, cts.Token).AsTask();
        await cts.CancelAsync();

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>();
        remote.Dispose();
        b.Registry.ActiveCount.Should().Be(0);
        b.Ended.Should().BeEmpty();
    }

    [Fact]
    public async Task StartAsync_SupersedeAcrossHosts_EndsTheRemoteRunSupersededNamingTheNewOwner()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle old = await a.Registry.StartAsync(Session);

        using RunHandle replacement = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await old.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        old.AbortToken.IsCancellationRequested.Should().BeTrue();
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("host 'b'").And.Contain(replacement.FencingToken.ToString(System.Globalization.CultureInfo.InvariantCulture));
        a.Registry.IsActive(Session).Should().BeFalse();
        replacement.FencingToken.Should().BeGreaterThan(old.FencingToken);
        a.Registry.AbandonedCount.Should().Be(1, "the superseded run's provider has not settled");
        old.Dispose();
        (await cluster.Store.GetOwnerAsync(Session))!.HostId.Should().Be("b", "the old run's late release must not free the new owner's lease");
    }

    [Fact]
    public async Task StartAsync_BackgroundSupersedeOnASessionHeldElsewhere_RefusedNamingTheOwnerAndTheRemoteRunGoesOn()
    {
        // The store does not say whether another host's run is a background one, and background work must never end a
        // user's turn: a background start asks the store to supersede nobody.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle user = await a.Registry.StartAsync(Session);

        SessionBusyException busy = (await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Supersede }))
            .Should().ThrowAsync<SessionBusyException>()).Which;

        busy.OwnerHostId.Should().Be("a");
        busy.FencingToken.Should().Be(user.FencingToken);
        user.IsCurrent.Should().BeTrue();
        a.Ended.Should().BeEmpty();
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(user.FencingToken);
    }

    [Fact]
    public async Task StartAsync_LocalSupersede_NewRunHoldsTheLease()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle old = await a.Registry.StartAsync(Session);

        using RunHandle replacement = await a.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await old.Completion).Should().Be(RunEndReason.Superseded);
        replacement.IsCurrent.Should().BeTrue();
        RunLeaseInfo owner = (await cluster.Store.GetOwnerAsync(Session))!;
        owner.FencingToken.Should().Be(replacement.FencingToken).And.BeGreaterThan(old.FencingToken);
    }

    [Fact]
    public async Task StartAsync_ForegroundOnALeasedBackgroundRun_PreemptsItAsWithoutAStore()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle background = await a.Registry.StartAsync(Session, new RunStartOptions { Background = true });

        using RunHandle user = await a.Registry.StartAsync(Session);

        (await background.Completion).Should().Be(RunEndReason.Superseded);
        a.LogsWithEvent("RunPreempted").Should().ContainSingle();
        a.LogsWithEvent("RunSuperseded").Should().BeEmpty();
        user.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task Start_WithALeaseStore_ThrowsInvalidOperationNamingStartAsync()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");

        FluentActions.Invoking(() => a.Registry.Start(Session)).Should().Throw<InvalidOperationException>().WithMessage("*StartAsync*");
        FluentActions.Invoking(() => a.Registry.TryStart(Session, out _)).Should().Throw<InvalidOperationException>().WithMessage("*StartAsync*");
        a.Registry.ActiveCount.Should().Be(0);
        (await cluster.Store.GetOwnerAsync(Session)).Should().BeNull();
    }

    [Fact]
    public async Task RunAsync_WithALeaseStore_HoldsTheLeaseForTheRunAndReleasesIt()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var provider = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        long tokenSeen = 0;

        Task<int> run = a.Registry.RunAsync(Session, _ =>
        {
            tokenSeen = RunContext.Current!.FencingToken;
            return provider.Task;
        });
        RunLeaseInfo? during = await cluster.Store.GetOwnerAsync(Session);
        provider.SetResult(42);

        (await run.Guard()).Should().Be(42);
        during!.FencingToken.Should().Be(tokenSeen);
        cluster.Store.LeaseCount.Should().Be(0);
    }

    [Fact]
    public async Task ForceEviction_LeasedRun_ReleasesTheLease()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => { o.RunTimeout = TimeSpan.FromSeconds(3); o.GracePeriod = TimeSpan.FromSeconds(2); });
        RunHandle run = await a.Registry.StartAsync(Session);
        run.Attach(new TaskCompletionSource().Task);

        cluster.Time.Advance(TimeSpan.FromSeconds(5));

        (await run.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
        cluster.Store.LeaseCount.Should().Be(0, "an evicted run's lease is released with it, so other hosts need not wait out the time to live");
    }

    [Fact]
    public async Task StartAsync_SupersededLocallyWhileTakingTheLease_ThrowsSessionBusyAndLeavesNoTrace()
    {
        using var cluster = new LeaseCluster();
        var gated = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost("a", store: gated);

        Task<RunHandle> first = a.Registry.StartAsync(Session).AsTask();
        gated.HoldAcquires = false;
        using RunHandle second = await a.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        gated.Open();

        SessionBusyException busy = (await FluentActions.Awaiting(() => first.Guard()).Should().ThrowAsync<SessionBusyException>()).Which;
        busy.RunId.Should().Be(second.RunId);
        busy.FencingToken.Should().Be(second.FencingToken);
        busy.OwnerHostId.Should().BeNull("the session is this host's");
        a.Ended.Should().BeEmpty("the first start never began, so nothing ended");
        a.LogsWithEvent("RunStarted").Should().ContainSingle();
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(second.FencingToken);
    }

    [Fact]
    public async Task RunAsync_SupersededLocallyWhileTakingTheLease_ThrowsSessionBusyInsteadOfHanging()
    {
        using var cluster = new LeaseCluster();
        var gated = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost("a", store: gated);
        bool providerRan = false;

        Task<int> run = a.Registry.RunAsync(Session, _ => { providerRan = true; return Task.FromResult(1); });
        gated.HoldAcquires = false;
        using RunHandle second = await a.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        gated.Open();

        await FluentActions.Awaiting(() => run.Guard()).Should().ThrowAsync<SessionBusyException>();
        providerRan.Should().BeFalse();
    }
}
