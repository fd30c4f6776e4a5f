using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// <see cref="InMemoryRunLeaseStore"/> beyond the store contract it shares with Redis: argument checks, the clock-derived
/// fencing token, lease expiry at the exact instant, and the simulations (crash, outage, restart, lost key) tests rely on.
/// </summary>
public sealed class InMemoryRunLeaseStoreTests
{
    private const string Session = "s1";

    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);

    /// <summary>A store instant with a sub-millisecond part (456 ms and 789.0 µs past the second), so a token shows whether it counts microseconds.</summary>
    private static readonly DateTimeOffset Start = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero).AddTicks(4_567_890);

    private static long StartMicroseconds => (Start - DateTimeOffset.UnixEpoch).Ticks / 10;

    [Fact]
    public async Task LeaseCount_BeforeTheTtlEnds_CountsTheLease()
    {
        var time = new FakeTimeProvider(Start);
        var store = new InMemoryRunLeaseStore(time);
        await AcquiredAsync(store, Session, "a");

        store.LeaseCount.Should().Be(1);
        time.Advance(Ttl - TimeSpan.FromTicks(1));
        store.LeaseCount.Should().Be(1, "the lease lives until its expiry instant");
    }

    [Fact]
    public async Task LeaseCount_AtTheExpiryInstant_NoLongerCountsTheLease()
    {
        var time = new FakeTimeProvider(Start);
        var store = new InMemoryRunLeaseStore(time);
        await AcquiredAsync(store, Session, "a");

        time.Advance(Ttl);

        store.LeaseCount.Should().Be(0, "a lease is held only while its expiry is still ahead");
    }

    [Fact]
    public async Task AcquireAsync_NullRequest_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.AcquireAsync(null!);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("request");
    }

    [Fact]
    public async Task AcquireAsync_FreeSession_TokenIsTheStoreTimeInMicroseconds()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        RunLease lease = await AcquiredAsync(store, Session, "a");

        lease.FencingToken.Should().Be(StartMicroseconds);
    }

    [Fact]
    public async Task AcquireAsync_CancelledToken_ThrowsWithoutTakingTheLease()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        Func<Task> act = async () => await store.AcquireAsync(new RunLeaseRequest(Session, "a", Ttl), cts.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        store.LeaseCount.Should().Be(0);
        store.CallCount.Should().Be(1, "a cancelled call still counts as one the store refused");
    }

    [Fact]
    public async Task AcquireAsync_HostCrashed_ThrowsUnavailableNamingTheCrash()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        store.CrashHost("a");

        Func<Task> act = async () => await store.AcquireAsync(new RunLeaseRequest(Session, "a", Ttl));

        RunLeaseUnavailableException ex = (await act.Should().ThrowExactlyAsync<RunLeaseUnavailableException>()).Which;
        ex.SessionId.Should().Be(Session);
        ex.InnerException.Should().BeOfType<TimeoutException>().Which.Message.Should().Be("host 'a' has crashed (simulated)");
        ex.Message.Should().Be("The run lease store is unavailable for session 's1': host 'a' has crashed (simulated).");
    }

    [Fact]
    public async Task AcquireAsync_DuringAnOutage_ThrowsUnavailableNamingTheOutage()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        store.BeginOutage();

        Func<Task> act = async () => await store.AcquireAsync(new RunLeaseRequest(Session, "a", Ttl));

        RunLeaseUnavailableException ex = (await act.Should().ThrowExactlyAsync<RunLeaseUnavailableException>()).Which;
        ex.InnerException.Should().BeOfType<TimeoutException>().Which.Message.Should().Be("the store is unreachable (simulated outage)");
        ex.Message.Should().Be("The run lease store is unavailable for session 's1': the store is unreachable (simulated outage).");
    }

    [Fact]
    public async Task AcquireAsync_HangingOutageAndCallerContextNeverRuns_CancellationStillEndsTheCall()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        store.BeginOutage(hang: true);
        using var cts = new CancellationTokenSource();
        Task<RunLeaseAcquireResult> call;
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(new StalledSynchronizationContext());
        try
        {
            call = store.AcquireAsync(new RunLeaseRequest(Session, "a", Ttl), cts.Token).AsTask();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        call.IsCompleted.Should().BeFalse("a hanging store answers nothing until the call is cancelled");
        await cts.CancelAsync();

        // The real-time bound only keeps a regression from hanging the run: the call must end without the caller's context.
        Func<Task> act = () => call.WaitAsync(TimeSpan.FromSeconds(10));
        await act.Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task RenewAsync_NullLeases_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.RenewAsync(null!, Ttl);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("leases");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task RenewAsync_NonPositiveTtl_ThrowsAndLeavesTheLeaseAsItWas(int ttlMilliseconds)
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        RunLease lease = await AcquiredAsync(store, Session, "a");

        Func<Task> act = async () => await store.RenewAsync([lease], TimeSpan.FromMilliseconds(ttlMilliseconds));

        (await act.Should().ThrowExactlyAsync<ArgumentOutOfRangeException>()).Which.ParamName.Should().Be("ttl");
        (await store.GetOwnerAsync(Session))!.ExpiresAt.Should().Be(Start + Ttl);
    }

    [Fact]
    public async Task RenewAsync_EmptyBatchWithZeroTtl_ThrowsArgumentOutOfRangeException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.RenewAsync([], TimeSpan.Zero);

        (await act.Should().ThrowExactlyAsync<ArgumentOutOfRangeException>()).Which.ParamName.Should().Be("ttl");
    }

    [Fact]
    public async Task ReleaseAsync_NullLease_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.ReleaseAsync(null!);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("lease");
    }

    [Fact]
    public async Task RequestAbortAsync_NullSessionId_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.RequestAbortAsync(null!, expectedFencingToken: null, reason: null);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("sessionId");
    }

    [Fact]
    public async Task GetOwnerAsync_NullSessionId_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.GetOwnerAsync(null!);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("sessionId");
    }

    [Fact]
    public async Task SubscribeAsync_NullHostId_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.SubscribeAsync(null!, new RecordingObserver());

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("hostId");
    }

    [Fact]
    public async Task SubscribeAsync_NullObserver_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Func<Task> act = async () => await store.SubscribeAsync("a", null!);

        (await act.Should().ThrowExactlyAsync<ArgumentNullException>()).Which.ParamName.Should().Be("observer");
    }

    [Fact]
    public async Task SubscribeAsync_DuringAnOutage_ThrowsUnavailableForNoSession()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        store.BeginOutage();

        Func<Task> act = async () => await store.SubscribeAsync("a", new RecordingObserver());

        RunLeaseUnavailableException ex = (await act.Should().ThrowExactlyAsync<RunLeaseUnavailableException>()).Which;
        ex.SessionId.Should().BeEmpty("a subscription concerns a host, not a session");
        ex.Message.Should().Be("The run lease store is unavailable for session '': the store is unreachable (simulated outage).");
    }

    [Fact]
    public void CrashHost_NullHostId_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Action act = () => store.CrashHost(null!);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("hostId");
    }

    [Fact]
    public async Task CrashHost_SubscribedHostSuperseded_DeliversItNothing()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await store.SubscribeAsync("a", observer);
        await AcquiredAsync(store, Session, "a");

        store.CrashHost("a");
        await AcquiredAsync(store, Session, "b", supersede: true);

        observer.Received.Should().BeEmpty("a crashed host hears nothing, not even that its lease was taken over");
    }

    [Fact]
    public async Task EndOutage_SubscribedHosts_DeliversReconnectedWithoutSessionOrToken()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        var observerA = new RecordingObserver();
        var observerB = new RecordingObserver();
        await using IAsyncDisposable subA = await store.SubscribeAsync("a", observerA);
        await using IAsyncDisposable subB = await store.SubscribeAsync("b", observerB);
        store.BeginOutage();

        store.EndOutage();

        foreach (RecordingObserver observer in new[] { observerA, observerB })
        {
            RunLeaseNotification notification = observer.Received.Should().ContainSingle().Which;
            notification.Kind.Should().Be(RunLeaseNotificationKind.Reconnected);
            notification.SessionId.Should().BeEmpty();
            notification.FencingToken.Should().Be(0);
            notification.Reason.Should().BeNull();
            notification.NewOwner.Should().BeNull();
        }
    }

    [Fact]
    public async Task Restart_FencingCounterAheadOfTheClock_ForgetsItAndMintsFromTheClock()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));
        for (int i = 0; i < 3; i++)
        {
            RunLease lease = await AcquiredAsync(store, Session, "a");
            lease.FencingToken.Should().Be(StartMicroseconds + i, "within one microsecond the counter runs ahead of the clock");
            (await store.ReleaseAsync(lease)).Should().BeTrue();
        }

        store.Restart();
        RunLease afterRestart = await AcquiredAsync(store, Session, "a");

        afterRestart.FencingToken.Should().Be(StartMicroseconds, "a store without persistence forgets its counter; only the clock remains");
    }

    [Fact]
    public void RemoveLease_NullSessionId_ThrowsArgumentNullException()
    {
        var store = new InMemoryRunLeaseStore(new FakeTimeProvider(Start));

        Action act = () => store.RemoveLease(null!);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("sessionId");
    }

    [Fact]
    public async Task RemoveLease_LeaseLapsedAndReportedFree_ReturnsFalse()
    {
        var time = new FakeTimeProvider(Start);
        var store = new InMemoryRunLeaseStore(time);
        await AcquiredAsync(store, Session, "a");
        time.Advance(Ttl);
        (await store.GetOwnerAsync(Session)).Should().BeNull();

        store.RemoveLease(Session).Should().BeFalse("the store already found the session without a lease");
    }

    [Fact]
    public async Task RemoveLease_LeaseLapsedButNeverLookedUp_ReturnsFalse()
    {
        var time = new FakeTimeProvider(Start);
        var store = new InMemoryRunLeaseStore(time);
        await AcquiredAsync(store, Session, "a");
        time.Advance(Ttl);

        store.RemoveLease(Session).Should().BeFalse("a lease past its expiry is gone, looked at or not");
    }

    [Fact]
    public async Task RemoveLease_LiveLease_ReturnsTrueAndFreesTheSession()
    {
        var time = new FakeTimeProvider(Start);
        var store = new InMemoryRunLeaseStore(time);
        await AcquiredAsync(store, Session, "a");

        store.RemoveLease(Session).Should().BeTrue();
        (await store.GetOwnerAsync(Session)).Should().BeNull();
    }

    private static async Task<RunLease> AcquiredAsync(InMemoryRunLeaseStore store, string sessionId, string hostId, bool supersede = false)
    {
        RunLeaseAcquireResult result = await store.AcquireAsync(new RunLeaseRequest(sessionId, hostId, Ttl, supersede));
        result.IsAcquired.Should().BeTrue();
        return result.Lease!;
    }

    private sealed class RecordingObserver : IRunLeaseObserver
    {
        private readonly Lock _lock = new();
        private readonly List<RunLeaseNotification> _received = [];

        public IReadOnlyList<RunLeaseNotification> Received
        {
            get
            {
                lock (_lock)
                {
                    return [.. _received];
                }
            }
        }

        public void OnNotification(RunLeaseNotification notification)
        {
            lock (_lock)
            {
                _received.Add(notification);
            }
        }
    }

    /// <summary>A caller's context that never runs what is posted to it, as a blocked UI thread.</summary>
    private sealed class StalledSynchronizationContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state)
        {
        }

        public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException();
    }
}
