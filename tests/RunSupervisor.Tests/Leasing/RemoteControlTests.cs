using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="ActiveRunRegistry.TryAbortAsync"/> and <see cref="ActiveRunRegistry.GetSessionOwnerAsync"/>: reaching a session's run wherever it runs.</summary>
public sealed class RemoteControlTests
{
    private const string Session = "s1";

    [Fact]
    public async Task TryAbortAsync_RunOnAnotherHost_AbortsItThere()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);

        bool asked = await b.Registry.TryAbortAsync(Session, run.FencingToken, "operator stop");

        asked.Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Dispose();
        (await run.Completion).Should().Be(RunEndReason.Aborted);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("operator stop");
    }

    [Fact]
    public async Task TryAbortAsync_ThisHostsStartStillWaitsForItsLease_AbortsTheHoldersRunInstead()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var gated = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host b = cluster.AddHost("b", store: gated);
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> pending = b.Registry.StartAsync(Session).AsTask();

        bool asked = await b.Registry.TryAbortAsync(Session, reason: "operator stop");

        asked.Should().BeTrue();
        remote.AbortToken.IsCancellationRequested.Should().BeTrue("the session's run is the holder's, not the start waiting here for its lease");
        gated.Open();
        await FluentActions.Awaiting(() => pending.Guard()).Should().ThrowAsync<SessionBusyException>();
        b.Ended.Should().BeEmpty("the start that never got its lease never appeared, so it did not end either");
        remote.Dispose();
    }

    [Fact]
    public async Task TryAbortAsync_WrongToken_DoesNothing()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle run = await a.Registry.StartAsync(Session);

        bool asked = await b.Registry.TryAbortAsync(Session, run.FencingToken - 1, "stale");

        asked.Should().BeFalse();
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        (await a.Registry.TryAbortAsync(Session, run.FencingToken - 1)).Should().BeFalse("the local path checks the token too");
    }

    [Fact]
    public async Task TryAbortAsync_LocalRun_AbortsWithoutTheStore()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using RunHandle run = await a.Registry.StartAsync(Session);
        long calls = cluster.Store.CallCount;

        (await a.Registry.TryAbortAsync(Session, run.FencingToken)).Should().BeTrue();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        cluster.Store.CallCount.Should().Be(calls);
    }

    [Fact]
    public async Task TryAbortAsync_OwnerMissedTheMessage_AbortedByItsNextRenew()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", store: new ForwardingLeaseStore(cluster.Store) { Deaf = true });
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle run = await a.Registry.StartAsync(Session);

        (await b.Registry.TryAbortAsync(Session, run.FencingToken, "from b")).Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeFalse("host a never hears the message");
        cluster.Time.Advance(LeaseCluster.Renew);

        run.AbortToken.IsCancellationRequested.Should().BeTrue("the renew answer carries the abort flag");
        run.Dispose();
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("from b");
    }

    [Fact]
    public async Task TryAbortAsync_IdleCluster_ReturnsFalse()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");

        (await b.Registry.TryAbortAsync(Session)).Should().BeFalse();
    }

    [Fact]
    public async Task TryAbortAsync_StoreDown_ThrowsRunLeaseUnavailable()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        cluster.Store.BeginOutage();

        await FluentActions.Awaiting(async () => await b.Registry.TryAbortAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();
    }

    [Fact]
    public async Task GetSessionOwnerAsync_ReportsTheHoldingHostOrNull()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);

        RunLeaseInfo? owner = await b.Registry.GetSessionOwnerAsync(Session);
        run.Dispose();
        RunLeaseInfo? after = await b.Registry.GetSessionOwnerAsync(Session);

        owner.Should().NotBeNull();
        owner!.HostId.Should().Be("a");
        owner.FencingToken.Should().Be(run.FencingToken);
        after.Should().BeNull();
    }

    [Fact]
    public async Task NoStore_TokensAreRunIdsAndOwnerIsLocal()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { Lease = { HostId = "solo" } }, new FakeTimeProvider());
        using RunHandle run = registry.Start(Session);

        RunLeaseInfo? owner = await registry.GetSessionOwnerAsync(Session);

        run.FencingToken.Should().Be(run.RunId);
        owner!.HostId.Should().Be("solo");
        owner.FencingToken.Should().Be(run.RunId);
        (await registry.GetSessionOwnerAsync("other")).Should().BeNull();
        (await registry.TryAbortAsync("other")).Should().BeFalse();
        (await registry.TryAbortAsync(Session, run.FencingToken)).Should().BeTrue();
    }

    [Fact]
    public async Task TryAbortAsync_BadSessionId_ThrowsArgumentException()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");

        await FluentActions.Awaiting(async () => await a.Registry.TryAbortAsync(" ")).Should().ThrowAsync<ArgumentException>();
        await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync(null!)).Should().ThrowAsync<ArgumentNullException>();
    }
}
