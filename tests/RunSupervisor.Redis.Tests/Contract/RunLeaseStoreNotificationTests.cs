using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>
/// How a store tells hosts what happened to their leases, against the in-memory reference, Garnet and redis-server:
/// supersedes and aborts reach the owner's host only, the release of a session some host asked about reaches every host.
/// </summary>
public abstract class RunLeaseStoreNotificationTests : RunLeaseStoreContractTestBase
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    [StoreFact]
    public async Task AcquireAsync_Supersede_TakesOverAndNotifiesTheOldOwnerOnly()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var observerA = new RecordingObserver();
        var observerB = new RecordingObserver();
        await using IAsyncDisposable subA = await a.SubscribeAsync("host-a", observerA);
        await using IAsyncDisposable subB = await b.SubscribeAsync("host-b", observerB);
        string session = "weird {" + NewSession() + "}:ü";
        RunLease old = await AcquiredAsync(a, session, "host-a");

        RunLeaseAcquireResult result = await b.AcquireAsync(Request(session, "host-b", supersede: true));

        result.IsAcquired.Should().BeTrue();
        result.Lease!.FencingToken.Should().BeGreaterThan(old.FencingToken);
        result.Superseded!.HostId.Should().Be("host-a");
        result.Superseded.FencingToken.Should().Be(old.FencingToken);
        RunLeaseNotification notification = await observerA.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Superseded);
        notification.SessionId.Should().Be(session);
        notification.FencingToken.Should().Be(old.FencingToken);
        notification.NewOwner!.HostId.Should().Be("host-b");
        notification.NewOwner.FencingToken.Should().Be(result.Lease.FencingToken);
        notification.NewOwner.SessionId.Should().Be(session);
        await Task.Delay(Quiet);
        observerB.Received.Should().NotContain(n => n.Kind == RunLeaseNotificationKind.Superseded);
    }

    [StoreFact]
    public async Task AcquireAsync_SupersedeOfAFreeSession_TakesItWithoutNotifying()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await a.SubscribeAsync("host-a", observer);

        RunLeaseAcquireResult result = await a.AcquireAsync(Request(NewSession(), "host-a", supersede: true));

        result.IsAcquired.Should().BeTrue();
        result.Superseded.Should().BeNull();
        await Task.Delay(Quiet);
        observer.Received.Should().NotContain(n => n.Kind == RunLeaseNotificationKind.Superseded);
    }

    [StoreFact]
    public async Task RequestAbortAsync_FromAnotherHost_DeliversAbortRequestedToTheOwnersObserver()
    {
        IRunLeaseStore owner = await Harness.CreateStoreAsync();
        IRunLeaseStore other = await Harness.CreateStoreAsync();
        var ownerObserver = new RecordingObserver();
        var otherObserver = new RecordingObserver();
        await using IAsyncDisposable subOwner = await owner.SubscribeAsync("host-owner", ownerObserver);
        await using IAsyncDisposable subOther = await other.SubscribeAsync("host-other", otherObserver);
        string session = NewSession();
        RunLease lease = await AcquiredAsync(owner, session, "host-owner");

        (await other.RequestAbortAsync(session, lease.FencingToken, "operator: stop {now}")).Should().BeTrue();

        RunLeaseNotification notification = await ownerObserver.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested);
        notification.SessionId.Should().Be(session);
        notification.FencingToken.Should().Be(lease.FencingToken);
        notification.Reason.Should().Be("operator: stop {now}");
        await Task.Delay(Quiet);
        otherObserver.Received.Should().NotContain(n => n.Kind == RunLeaseNotificationKind.AbortRequested);
    }

    [StoreFact]
    public async Task Notifications_SessionIdWithAnUnpairedSurrogate_ArriveWithThatVeryId()
    {
        // UTF-8 has no unpaired surrogate: a message carrying the id as UTF-8 would name "…\uFFFD", another session.
        IRunLeaseStore owner = await Harness.CreateStoreAsync();
        IRunLeaseStore other = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await owner.SubscribeAsync("host-owner", observer);
        string session = NewSession() + "\uD800";
        RunLease lease = await AcquiredAsync(owner, session, "host-owner");

        (await other.RequestAbortAsync(session, lease.FencingToken, "stop")).Should().BeTrue();
        RunLease taken = (await other.AcquireAsync(new RunLeaseRequest(session, "host-other", LongTtl, supersede: true))).Lease!;

        (await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested)).SessionId.Should().Be(session);
        RunLeaseNotification superseded = await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Superseded);
        superseded.SessionId.Should().Be(session);
        superseded.NewOwner!.SessionId.Should().Be(session);
        superseded.NewOwner.FencingToken.Should().Be(taken.FencingToken);
    }

    [StoreFact]
    public async Task RequestAbortAsync_WithoutReason_DeliversNullReason()
    {
        IRunLeaseStore owner = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await owner.SubscribeAsync("host-owner", observer);
        string session = NewSession();
        await AcquiredAsync(owner, session, "host-owner");

        (await owner.RequestAbortAsync(session, null, null)).Should().BeTrue();

        RunLeaseNotification notification = await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested);
        notification.Reason.Should().BeNull();
    }

    [StoreFact]
    public async Task RequestAbortAsync_WrongToken_NotifiesNobody()
    {
        IRunLeaseStore owner = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await owner.SubscribeAsync("host-owner", observer);
        string session = NewSession();
        RunLease lease = await AcquiredAsync(owner, session, "host-owner");

        (await owner.RequestAbortAsync(session, lease.FencingToken - 1, "stale")).Should().BeFalse();

        await Task.Delay(Quiet);
        observer.Received.Should().BeEmpty();
    }

    [StoreFact]
    public async Task ReleaseAsync_AnotherHostAskedForTheOwner_DeliversReleasedToEveryOtherHost()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        IRunLeaseStore c = await Harness.CreateStoreAsync();
        var observerB = new RecordingObserver();
        var observerC = new RecordingObserver();
        await using IAsyncDisposable subB = await b.SubscribeAsync("host-b", observerB);
        await using IAsyncDisposable subC = await c.SubscribeAsync("host-c", observerC);
        string session = NewSession() + ":{released}";
        RunLease lease = await AcquiredAsync(a, session, "host-a");
        (await b.GetOwnerAsync(session))!.HostId.Should().Be("host-a");

        (await a.ReleaseAsync(lease)).Should().BeTrue();

        foreach (RecordingObserver observer in new[] { observerB, observerC })
        {
            RunLeaseNotification notification = await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Released);
            notification.SessionId.Should().Be(session);
            notification.FencingToken.Should().Be(lease.FencingToken);
        }
    }

    [StoreFact]
    public async Task ReleaseAsync_AfterAnAcquireItRefused_DeliversReleased()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await b.SubscribeAsync("host-b", observer);
        string session = NewSession();
        RunLease lease = await AcquiredAsync(a, session, "host-a");
        (await b.AcquireAsync(Request(session, "host-b"))).IsAcquired.Should().BeFalse();

        (await a.ReleaseAsync(lease)).Should().BeTrue();

        (await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Released)).FencingToken.Should().Be(lease.FencingToken);
    }

    [StoreFact]
    public async Task ReleaseAsync_NobodyAskedAboutTheSession_AnnouncesNothing()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await b.SubscribeAsync("host-b", observer);
        RunLease lease = await AcquiredAsync(a, NewSession(), "host-a");

        (await a.ReleaseAsync(lease)).Should().BeTrue();

        await Task.Delay(Quiet);
        observer.Received.Should().NotContain(n => n.Kind == RunLeaseNotificationKind.Released, "no host waits for a session nobody asked about");
    }

    [StoreFact]
    public async Task ReleaseAsync_SupersederOfAnAskedAboutLease_StillAnnouncesItsRelease()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        IRunLeaseStore c = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await b.SubscribeAsync("host-b", observer);
        string session = NewSession();
        await AcquiredAsync(a, session, "host-a");
        (await b.GetOwnerAsync(session)).Should().NotBeNull();
        RunLease taken = await AcquiredAsync(c, session, "host-c", supersede: true);

        (await c.ReleaseAsync(taken)).Should().BeTrue();

        (await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Released)).FencingToken.Should().Be(taken.FencingToken, "host b still waits: the lease it asked about was taken over, not released");
    }

    [StoreFact]
    public async Task ReleaseAsync_StaleLease_PublishesNothing()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await b.SubscribeAsync("host-b", observer);
        string session = NewSession();
        RunLease old = await AcquiredAsync(a, session, "host-a");
        await AcquiredAsync(b, session, "host-b", supersede: true);

        (await a.ReleaseAsync(old)).Should().BeFalse();

        await Task.Delay(Quiet);
        observer.Received.Should().NotContain(n => n.Kind == RunLeaseNotificationKind.Released);
    }

    [StoreFact]
    public async Task SubscribeAsync_Disposed_StopsDelivery()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var observer = new RecordingObserver();
        IAsyncDisposable subscription = await a.SubscribeAsync("host-a", observer);
        string session = NewSession();
        await AcquiredAsync(a, session, "host-a");

        await subscription.DisposeAsync();
        await AcquiredAsync(b, session, "host-b", supersede: true);

        await Task.Delay(Quiet);
        observer.Received.Should().BeEmpty();
    }

    [StoreFact]
    public async Task SubscribeAsync_TwoObserversOfOneHost_BothReceive()
    {
        IRunLeaseStore a = await Harness.CreateStoreAsync();
        IRunLeaseStore b = await Harness.CreateStoreAsync();
        var first = new RecordingObserver();
        var second = new RecordingObserver();
        await using IAsyncDisposable sub1 = await a.SubscribeAsync("host-a", first);
        await using IAsyncDisposable sub2 = await a.SubscribeAsync("host-a", second);
        string session = NewSession();
        await AcquiredAsync(a, session, "host-a");

        await b.RequestAbortAsync(session, null, "both");

        (await first.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested)).Reason.Should().Be("both");
        (await second.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested)).Reason.Should().Be("both");
    }
}
