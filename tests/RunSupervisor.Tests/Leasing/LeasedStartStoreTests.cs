using System.Globalization;
using FluentAssertions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// The leased start against its store: what a start that cannot reach it logs and leaves, how store health recovers,
/// a start that loses its race while taking the lease, releases, and the session calls that reach other hosts.
/// </summary>
public sealed class LeasedStartStoreTests
{
    private const string Session = "s1";

    [Fact]
    public async Task StartAsync_StoreDown_FailOpen_LogsThatTheRunStartsUnfenced()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        cluster.Store.BeginOutage();

        using RunHandle run = await a.Registry.StartAsync(Session);

        FakeLogRecord record = a.LogsWithEvent("LeaseStoreUnavailable").Should().ContainSingle(r => r.Message.Contains("'s1'")).Which;
        record.Level.Should().Be(LogLevel.Warning);
        record.Message.Should().Be("The run lease store did not answer for session 's1' (acquire); the run starts unfenced (FailOpen).");
        record.Exception.Should().BeOfType<RunLeaseUnavailableException>();
    }

    [Fact]
    public async Task StartAsync_StoreDown_FailClosed_LogsThatTheStartFails()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage();

        await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();

        FakeLogRecord record = a.LogsWithEvent("LeaseStoreUnavailable").Should().ContainSingle(r => r.Message.Contains("'s1'")).Which;
        record.Level.Should().Be(LogLevel.Warning);
        record.Id.Id.Should().Be(26);
        record.Message.Should().Be("The run lease store did not answer for session 's1' (acquire); the start fails (FailClosed).");
    }

    [Fact]
    public async Task StartAsync_AfterAFailedStart_ASuccessfulAcquireMarksTheStoreAvailableAgain()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage();
        await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse();
        cluster.Store.EndOutage();

        using RunHandle run = await a.Registry.StartAsync(Session);

        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_CancelledWhileTakingTheLease_ThrowsAndLeavesTheSessionFree()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage(hang: true);
        using var cts = new CancellationTokenSource();

        Task<RunHandle> start = a.Registry.StartAsync(Session, cancellationToken: cts.Token).AsTask();
        start.IsCompleted.Should().BeFalse("the store does not answer");
        await cts.CancelAsync();

        (await FluentActions.Awaiting(() => start.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token, "the caller hears its own token, not the store timeout's link to it");
        a.Registry.ActiveCount.Should().Be(0);
        a.Ended.Should().BeEmpty();
        cluster.Store.EndOutage();
        using RunHandle next = await a.Registry.StartAsync(Session);
        next.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_IdleSession_LogsTheAcquiredLeaseAtDebug()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");

        using RunHandle run = await a.Registry.StartAsync(Session);

        FakeLogRecord record = a.LogsWithEvent("LeaseAcquired").Should().ContainSingle().Which;
        record.Level.Should().Be(LogLevel.Debug);
        record.Message.Should().Be(string.Create(CultureInfo.InvariantCulture, $"Run {run.RunId} for session 's1' holds the session's lease as host 'a' (fencing token {run.FencingToken})."));
    }

    [Fact]
    public async Task StartAsync_OwnStaleLeaseWhoseReleaseFailed_TakesItOverWithALargerToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle first = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();
        first.Dispose();
        cluster.Store.EndOutage();
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(first.FencingToken, "the release did not reach the store");

        using RunHandle second = await a.Registry.StartAsync(Session);

        second.FencingToken.Should().BeGreaterThan(first.FencingToken);
        (await cluster.Store.GetOwnerAsync(Session))!.FencingToken.Should().Be(second.FencingToken);
        FakeLogRecord failed = a.LogsWithEvent("LeaseReleaseFailed").Should().ContainSingle().Which;
        failed.Level.Should().Be(LogLevel.Debug);
        failed.Message.Should().Be(string.Create(CultureInfo.InvariantCulture, $"Releasing the lease of session 's1' (fencing token {first.FencingToken}) failed; it lapses one time to live after its last renew."));
    }

    [Fact]
    public async Task Dispose_AfterAStoreFailure_ASuccessfulReleaseMarksTheStoreAvailableAgain()
    {
        // Deaf: the store's reconnect notice, which would also say it is available, never arrives.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", store: new ForwardingLeaseStore(cluster.Store) { Deaf = true });
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();
        await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync("other")).Should().ThrowAsync<RunLeaseUnavailableException>();
        cluster.Store.EndOutage();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse();

        run.Dispose();

        cluster.Store.LeaseCount.Should().Be(0);
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_RegistryDisposedWhileTakingTheLease_ThrowsObjectDisposedAndReleasesTheLease()
    {
        using var cluster = new LeaseCluster();
        var gated = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost("a", store: gated);

        Task<RunHandle> start = a.Registry.StartAsync(Session).AsTask();
        cluster.Store.LeaseCount.Should().Be(1, "the store granted the lease; only its answer is held back");
        a.Registry.Dispose();
        gated.Open();

        await FluentActions.Awaiting(() => start.Guard()).Should().ThrowAsync<ObjectDisposedException>();
        cluster.Store.LeaseCount.Should().Be(0, "a run that never began holds no lease");
        a.Ended.Should().BeEmpty();
    }

    [Fact]
    public async Task StartAsync_SupersededByAnotherHost_TheOldRunNeverReleasesTheNewOwnersLease()
    {
        using var cluster = new LeaseCluster();
        var counting = new GatedLeaseStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", store: counting);
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle old = await a.Registry.StartAsync(Session);

        using RunHandle replacement = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        (await old.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        old.Dispose();

        counting.Releases.Should().Be(0, "the lease is host b's now");
        a.Registry.GetLeaseHealth().LeasesLost.Should().Be(1);
        FakeLogRecord record = a.LogsWithEvent("RemoteSupersede").Should().ContainSingle().Which;
        record.Message.Should().Be(string.Create(CultureInfo.InvariantCulture, $"Run {old.RunId} for session 's1' was superseded by host 'b' (fencing token {replacement.FencingToken})."));
    }

    [Fact]
    public async Task TryAbortAsync_LocalRunWithAReason_TheReasonIsTheEndsDetail()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        RunHandle run = await a.Registry.StartAsync(Session);

        (await a.Registry.TryAbortAsync(Session, run.FencingToken, "operator stop")).Should().BeTrue();
        run.Dispose();

        (await run.Completion.Guard()).Should().Be(RunEndReason.Aborted);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Contain("operator stop");
    }

    [Fact]
    public async Task TryAbortAsync_AndGetSessionOwnerAsync_DisposedRegistry_ThrowObjectDisposed()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle run = await b.Registry.StartAsync(Session);
        a.Registry.Dispose();

        await FluentActions.Awaiting(async () => await a.Registry.TryAbortAsync(Session)).Should().ThrowAsync<ObjectDisposedException>();
        await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync(Session)).Should().ThrowAsync<ObjectDisposedException>();
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task GetSessionOwnerAsync_AfterAFailedCall_ASuccessfulOneMarksTheStoreAvailableAgain()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        cluster.Store.BeginOutage();
        await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse();
        cluster.Store.EndOutage();

        (await a.Registry.GetSessionOwnerAsync(Session)).Should().BeNull();

        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue();
    }

    [Fact]
    public async Task GetSessionOwnerAsync_CallerCancelled_ThrowsOperationCanceledAndTheStoreStaysAvailable()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        Exception thrown = (await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync(Session, cts.Token)).Should().ThrowAsync<OperationCanceledException>()).Which;

        thrown.Should().NotBeOfType<RunLeaseUnavailableException>();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue("the caller gave up; the store did not fail");
    }

    [Fact]
    public async Task StartAsync_NoHostIdConfigured_HoldsTheLeaseAsMachineProcessAndARandomSuffix()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), time, leaseStore: store);
        using var other = new ActiveRunRegistry(new RunSupervisorOptions(), time, leaseStore: store);

        using RunHandle run = await registry.StartAsync(Session);

        RunLeaseInfo owner = (await store.GetOwnerAsync(Session))!;
        string prefix = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:");
        owner.HostId.Should().StartWith(prefix).And.MatchRegex("[0-9a-f]{8}$").And.HaveLength(prefix.Length + 8);
        registry.HostId.Should().Be(owner.HostId);
        other.HostId.Should().NotBe(owner.HostId, "each registry is its own host");
        registry.HasLeaseStore.Should().BeTrue();
    }

    [Fact]
    public void HasLeaseStore_RegistryWithoutAStore_False()
    {
        using var registry = new ActiveRunRegistry(timeProvider: new FakeTimeProvider());

        registry.HasLeaseStore.Should().BeFalse();
    }

    [Fact]
    public async Task StartAsync_LeaseAnswerArrivesPastItsLocalValidity_FailsUnavailableAndReleasesTheLease()
    {
        // Time to live 5 s less the 1 s margin: the lease is trusted until 4 s after the acquire's send. Its answer comes
        // at 4.5 s, within the acquire timeout: the store may have let the lease lapse by then, so it is not trusted.
        using var cluster = new LeaseCluster();
        var store = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost(
            "a",
            o =>
            {
                o.Lease.LeaseTtl = TimeSpan.FromSeconds(5);
                o.Lease.RenewInterval = TimeSpan.FromSeconds(1);
                o.Lease.AcquireTimeout = TimeSpan.FromSeconds(5);
            },
            store);
        Task<RunHandle> start = a.Registry.StartAsync(Session).AsTask();

        cluster.Time.Advance(TimeSpan.FromSeconds(4.5));
        store.Open();

        (await start.Awaiting(t => t.Guard()).Should().ThrowAsync<RunLeaseUnavailableException>())
            .Which.InnerException.Should().BeOfType<TimeoutException>();
        a.Registry.IsActive(Session).Should().BeFalse();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse("the store did not answer within the lease's validity");
        (await cluster.Store.GetOwnerAsync(Session)).Should().BeNull("the lease granted too late was released");
    }

}
