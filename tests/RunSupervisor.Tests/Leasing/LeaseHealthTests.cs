using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="ActiveRunRegistry.GetLeaseHealth"/>: what a health check reads about the lease store.</summary>
public sealed class LeaseHealthTests
{
    private const string Session = "s1";

    [Fact]
    public void GetLeaseHealth_NoStore_SaysSo()
    {
        using var registry = new ActiveRunRegistry(timeProvider: new FakeTimeProvider());

        RunLeaseHealth health = registry.GetLeaseHealth();

        health.HasStore.Should().BeFalse();
        health.IsStoreAvailable.Should().BeTrue();
        health.LastStoreFailureAt.Should().BeNull();
        health.LeasesLost.Should().Be(0);
    }

    [Fact]
    public async Task GetLeaseHealth_StoreFailsThenRecovers_UnavailableUntilACallSucceeds()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using RunHandle run = await a.Registry.StartAsync(Session);
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
        cluster.Store.BeginOutage();
        DateTimeOffset failedAt = cluster.Time.GetUtcNow() + LeaseCluster.Renew;

        cluster.Time.Advance(LeaseCluster.Renew);
        RunLeaseHealth during = a.Registry.GetLeaseHealth();
        cluster.Store.EndOutage();
        cluster.Time.Advance(LeaseCluster.Renew);
        RunLeaseHealth after = a.Registry.GetLeaseHealth();

        during.HasStore.Should().BeTrue();
        during.IsStoreAvailable.Should().BeFalse("the renew failed");
        during.LastStoreFailureAt.Should().Be(failedAt);
        after.IsStoreAvailable.Should().BeTrue("the next renew succeeded");
        after.LastStoreFailureAt.Should().Be(failedAt, "the last failure is remembered");
    }

    [Fact]
    public async Task GetLeaseHealth_LeasesLostAndUnfencedStarts_Counted()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        RunHandle lost = await a.Registry.StartAsync(Session);
        cluster.Store.RemoveLease(Session);
        cluster.Time.Advance(LeaseCluster.Renew);
        cluster.Store.BeginOutage();

        using RunHandle unfenced = await a.Registry.StartAsync("s2");

        (await lost.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        RunLeaseHealth health = a.Registry.GetLeaseHealth();
        health.LeasesLost.Should().Be(1);
        health.UnfencedStarts.Should().Be(1);
    }

    [Fact]
    public async Task GetLeaseHealth_StoreReconnectsToAnIdleHost_ReportsTheStoreAvailable()
    {
        // An idle host makes no store call that could succeed: the store's reconnect notice is how it learns.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        (await b.Registry.StartAsync(Session)).Dispose();
        cluster.Store.BeginOutage();
        await FluentActions.Awaiting(async () => await b.Registry.GetSessionOwnerAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();
        b.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse();

        cluster.Store.EndOutage();

        b.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue("the store told this host its connection was restored");
    }

}
