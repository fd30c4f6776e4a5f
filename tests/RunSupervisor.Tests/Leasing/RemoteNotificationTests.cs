using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// What a host does with the store's notifications about other hosts' doings: an abort or a supersede of its own run,
/// a release of a session it waits for or watches, a reconnect that may have hidden any of them.
/// </summary>
public sealed class RemoteNotificationTests
{
    private const string Session = "s1";

    private static readonly QueueRequest Heartbeat = new(Session, IsHeartbeat: true, QueueMode.Collect);

    [Fact]
    public async Task TryAbortAsync_WithoutAReason_OwnerEndsWithTheDefaultRemoteDetail()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle run = await a.Registry.StartAsync(Session);

        (await b.Registry.TryAbortAsync(Session, run.FencingToken)).Should().BeTrue();
        run.Dispose();

        (await run.Completion.Guard()).Should().Be(RunEndReason.Aborted);
        a.Ended.Should().ContainSingle().Which.Detail.Should().Be("aborted from another host");
    }

    [Fact]
    public async Task OnNotification_SupersededWithoutTheNewOwner_EndsTheRunNamingAnUnknownHost()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        RunHandle run = await b.Registry.StartAsync(Session);

        store.Observer!.OnNotification(new RunLeaseNotification(RunLeaseNotificationKind.Superseded, Session, run.FencingToken));

        (await run.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        b.Ended.Should().ContainSingle().Which.Detail.Should().Be("superseded by host 'unknown' (fencing token 0)");
    }

    [Fact]
    public async Task OnNotification_SupersededBeforeThisHostsLeaseAnswerArrived_TheRunEndsSupersededAsItsAnswerArrives()
    {
        using var cluster = new LeaseCluster();
        var gated = new GatedLeaseStore(cluster.Store) { HoldAcquires = true };
        LeaseCluster.Host a = cluster.AddHost("a", store: gated);
        LeaseCluster.Host b = cluster.AddHost("b");

        // The store grants a's lease; its answer is held on the way back.
        Task<RunHandle> startA = a.Registry.StartAsync(Session).AsTask();
        cluster.Store.LeaseCount.Should().Be(1);
        using RunHandle runB = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        gated.Open();
        RunHandle runA = await startA.Guard();

        (await runA.Completion.Guard()).Should().Be(RunEndReason.Superseded, "b superseded a's lease before a heard it had it");
        runA.IsCurrent.Should().BeFalse();
        runB.IsCurrent.Should().BeTrue();
        a.Ended.Should().ContainSingle().Which.Detail.Should().Be($"superseded by host 'b' (fencing token {runB.FencingToken})");
        runA.Dispose();
    }

    [Fact]
    public async Task OnNotification_Reconnected_WakesAStartWaitingForAnotherHostAtOnce()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        RunLease remote = await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        waiting.IsCompleted.Should().BeFalse();

        // The release message is lost in an outage; the reconnect makes the waiting start look again, without its poll.
        cluster.Store.RemoveLease(Session);
        cluster.Store.BeginOutage();
        cluster.Store.EndOutage();

        using RunHandle admitted = await waiting.Guard();
        admitted.FencingToken.Should().BeGreaterThan(remote.FencingToken);
    }

    [Fact]
    public async Task StartAsync_CancelledAsTheReleaseArrives_ThrowsOperationCanceledWithoutTryingAgain()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        RunLease remote = await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);
        using var cts = new CancellationTokenSource();
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }, cts.Token).AsTask();
        waiting.IsCompleted.Should().BeFalse();
        int acquires = store.AcquireCalls;

        // Registered after the waiting start's own registration, so it runs first (the latest runs first): the token is
        // already cancelled when the release message wakes the start, and the start's registration has not run yet.
        using CancellationTokenRegistration releaseFirst = cts.Token.Register(() =>
        {
            _ = cluster.Store.ReleaseAsync(remote);
            SpinWait.SpinUntil(() => waiting.IsCompleted, TestTime.HangGuard);
        });
        cts.Cancel();

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>();
        store.AcquireCalls.Should().Be(acquires, "a cancelled start does not ask for the lease again");
        b.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public async Task OnNotification_ReleasedForASessionNotWatched_OwesNothing()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        using RunHandle other = await b.Registry.StartAsync("s2");

        // Dropped for follow-ups queued in the host, not for another host: nothing here watches the session.
        (await policy.ResolveAsync(Heartbeat with { HasQueuedFollowups = true })).Action.Should().Be(QueueAction.Drop);
        store.Observer!.OnNotification(new RunLeaseNotification(RunLeaseNotificationKind.Released, Session, 1));

        owed.Should().Be(0);
        policy.GetDroppedHeartbeats(Session).Should().Be(1);
    }

    [Fact]
    public async Task OnNotification_ReleasedWhileThisHostRunsTheSession_OwedOnlyWhenTheLocalRunEnds()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunLease remote = await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);
        (await policy.ResolveAsync(Heartbeat)).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileRemote);

        // The other host's lease lapses unannounced, this host starts the session, then the late release message arrives.
        cluster.Store.RemoveLease(Session);
        RunHandle local = await b.Registry.StartAsync(Session);
        store.Observer!.OnNotification(new RunLeaseNotification(RunLeaseNotificationKind.Released, Session, remote.FencingToken));
        owed.Should().Be(0, "the session runs here: its end will owe the heartbeat");
        local.Dispose();

        owed.Should().Be(1);
    }

    [Fact]
    public async Task OnNotification_ReconnectedWithNothingWatched_DoesNotWakeTheWatchdog()
    {
        var time = new TimerTrackingTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var registry = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, leaseStore: store);
        using RunHandle run = await registry.StartAsync(Session);
        int before = time.Firings;

        store.BeginOutage();
        store.EndOutage();
        time.Advance(AsyncTestHelpers.Tick);

        time.Firings.Should().Be(before, "no session is watched and nothing else is due for five seconds");
        run.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task ResolveAsync_SessionHeldElsewhere_AsksTheStoreAgainOnlyOnceThePollIntervalHasPassed()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);

        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        int afterDrop = store.GetOwnerCalls;
        cluster.Time.Advance(LeaseCluster.Poll - AsyncTestHelpers.Tick);
        int beforePoll = store.GetOwnerCalls;
        cluster.Time.Advance(AsyncTestHelpers.Tick);
        int atPoll = store.GetOwnerCalls;
        cluster.Time.Advance(LeaseCluster.Poll);

        new[] { afterDrop, beforePoll, atPoll, store.GetOwnerCalls }.Should().Equal(1, 1, 2, 3);
    }

    [Fact]
    public async Task ResolveAsync_WatchdogWakesBetweenPolls_PollsOnlyAtTheInterval()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", o => o.Lease.RemoteIdlePollInterval = TimeSpan.FromSeconds(20), store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);

        // A run of this host's own wakes the watchdog every five seconds to renew its lease.
        using RunHandle own = await b.Registry.StartAsync("s2");
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        var calls = new List<int>();
        for (int i = 0; i < 5; i++)
        {
            cluster.Time.Advance(LeaseCluster.Renew);
            calls.Add(store.GetOwnerCalls);
        }

        calls.Should().Equal([1, 1, 1, 2, 2], "the session is asked about at 20 s, not at the renews at 5, 10, 15 and 25 s");
        own.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task ResolveAsync_WatchedSessionReleasedBeforeItsPoll_LeavesTheWatchdogIdle()
    {
        var time = new TimerTrackingTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var registry = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, leaseStore: store);
        using var policy = new HeartbeatQueuePolicy(registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunLease remote = await LeaseCluster.HoldElsewhereAsync(store, Session);
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);

        (await store.ReleaseAsync(remote)).Should().BeTrue();
        owed.Should().Be(1, "the release message owes the heartbeat before the poll");

        // On a thread of its own: a watchdog that kept re-arming for an instant already past would never return.
        await Task.Run(() => time.Advance(LeaseCluster.Poll * 2)).Guard();
        time.ArmedTimers.Should().Be(0, "nothing is watched, so no poll is pending");
        owed.Should().Be(1);
    }
}
