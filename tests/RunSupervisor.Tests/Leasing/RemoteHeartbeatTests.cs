using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="HeartbeatQueuePolicy.ResolveAsync"/>: heartbeats for a session another host runs are dropped, counted and owed here.</summary>
public sealed class RemoteHeartbeatTests
{
    private const string Session = "s1";

    private static readonly QueueRequest Heartbeat = new(Session, IsHeartbeat: true, QueueMode.Collect);

    [Fact]
    public async Task ResolveAsync_SessionRunsOnAnotherHost_DropsAndCountsTheHeartbeat()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        using RunHandle remote = await a.Registry.StartAsync(Session);

        QueueDecision first = await policy.ResolveAsync(Heartbeat);
        QueueDecision second = await policy.ResolveAsync(Heartbeat);

        first.Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileRemote));
        second.Action.Should().Be(QueueAction.Drop);
        policy.GetDroppedHeartbeats(Session).Should().Be(2);
        policy.Resolve(Heartbeat).Action.Should().Be(QueueAction.RunNow, "the synchronous Resolve knows only this host");
    }

    [Fact]
    public async Task ResolveAsync_RemoteRunReleased_HeartbeatOwedOnTheDroppingHost()
    {
        using var hosts = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = hosts;
        RunHandle remote = await a.Registry.StartAsync(Session);
        await policy.ResolveAsync(Heartbeat);
        await policy.ResolveAsync(Heartbeat);

        remote.Dispose();

        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(2);
        policy.GetDroppedHeartbeats(Session).Should().Be(0);
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.RunNow);
    }

    [Fact]
    public async Task ResolveAsync_RemoteOwnerCrashed_OwedByAPollOnceTheLeaseExpires()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        _ = await a.Registry.StartAsync(Session);
        cluster.Store.CrashHost("a");
        await policy.ResolveAsync(Heartbeat);

        cluster.Time.Advance(LeaseCluster.Ttl - LeaseCluster.Poll);
        await Task.Yield();
        owed.Should().Be(0, "the crashed host's lease is still live");
        for (int i = 0; i < 3 && owed == 0; i++)
        {
            cluster.Time.Advance(LeaseCluster.Poll);
            await Task.Yield();
        }

        owed.Should().Be(1);
    }

    [Fact]
    public async Task ResolveAsync_IdleCluster_RunsNow()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);

        (await policy.ResolveAsync(Heartbeat)).Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
    }

    [Fact]
    public async Task ResolveAsync_BusyHere_AnswersAsResolveWithoutAskingTheStore()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var policy = new HeartbeatQueuePolicy(a.Registry);
        using RunHandle run = await a.Registry.StartAsync(Session);
        long calls = cluster.Store.CallCount;

        ValueTask<QueueDecision> decision = policy.ResolveAsync(Heartbeat);

        decision.IsCompletedSuccessfully.Should().BeTrue();
        (await decision).Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileBusy));
        cluster.Store.CallCount.Should().Be(calls);
    }

    [Fact]
    public async Task ResolveAsync_NoStore_CompletesSynchronouslyAsResolve()
    {
        using var registry = new ActiveRunRegistry(timeProvider: new FakeTimeProvider());
        using var policy = new HeartbeatQueuePolicy(registry);

        ValueTask<QueueDecision> idle = policy.ResolveAsync(Heartbeat);
        using RunHandle run = registry.Start(Session);
        ValueTask<QueueDecision> busy = policy.ResolveAsync(Heartbeat);

        idle.IsCompletedSuccessfully.Should().BeTrue();
        (await idle).Action.Should().Be(QueueAction.RunNow);
        (await busy).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileBusy);
    }

    [Fact]
    public async Task ResolveAsync_StoreDownFailClosed_DropsAndOwesOnceTheStoreAnswersIdle()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        cluster.Store.BeginOutage();

        QueueDecision decision = await policy.ResolveAsync(Heartbeat);
        cluster.Time.Advance(LeaseCluster.Poll);
        await Task.Yield();
        owed.Should().Be(0, "the poll during the outage learns nothing");
        cluster.Store.EndOutage();
        cluster.Time.Advance(LeaseCluster.Poll);
        await Task.Yield();

        decision.Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileStoreUnavailable));
        owed.Should().Be(1, "the first poll after the outage finds the session idle");
    }

    [Fact]
    public async Task ResolveAsync_ReconnectAfterAnOutage_PollsTheWatchedSessionsAtOnce()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunHandle remote = await a.Registry.StartAsync(Session);
        await policy.ResolveAsync(Heartbeat);

        // The release message is lost in the outage; the reconnect makes host b look again.
        cluster.Store.RemoveLease(Session);
        cluster.Store.BeginOutage();
        cluster.Store.EndOutage();
        cluster.Time.Advance(AsyncTestHelpers.Tick);
        await Task.Yield();

        owed.Should().Be(1);
        remote.Dispose();
    }

    [Fact]
    public async Task ResolveAsync_StoreDownFailOpen_RunsNow()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        cluster.Store.BeginOutage();

        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.RunNow);
    }

    [Fact]
    public async Task StartAsync_RefusedForASessionHeldElsewhere_OwesNothingUntilTheSessionIsIdleClusterWide()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunHandle remote = await a.Registry.StartAsync(Session);
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);

        await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session)).Should().ThrowAsync<SessionBusyException>();
        owed.Should().Be(0, "the refused start never made the session idle: host a still runs it");
        remote.Dispose();

        owed.Should().Be(1);
    }

    [Fact]
    public async Task HeartbeatOwed_StartHereFailsClosedInAnOutage_NotOwedWhileTheOtherHostStillHoldsTheSession()
    {
        using var hosts = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = hosts;
        RunHandle remote = await a.Registry.StartAsync(Session);
        (await policy.ResolveAsync(Heartbeat)).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileRemote);

        cluster.Store.BeginOutage();
        await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();
        cluster.Store.EndOutage();
        cluster.Time.Advance(LeaseCluster.Renew);

        owed.Should().BeEmpty("idle here says nothing of the session while another host holds it");
        remote.Dispose();
        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1, "owed once the store says the session is idle");
    }

    [Fact]
    public async Task HeartbeatOwed_AStartHereWaitsForTheOtherHostsRelease_OwedAfterThatStartsRunInstead()
    {
        using var hosts = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = hosts;
        RunHandle remote = await a.Registry.StartAsync(Session);
        await policy.ResolveAsync(Heartbeat);
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();

        remote.Dispose();
        RunHandle mine = await waiting.Guard();

        owed.Should().BeEmpty("the start waiting here took the session at its release");
        mine.Dispose();
        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1);
    }

    [Fact]
    public async Task HeartbeatOwed_AStartHereGivesUpWaitingForTheOtherHost_OwedOnceTheSessionIsIdle()
    {
        using var hosts = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = hosts;
        RunHandle remote = await a.Registry.StartAsync(Session);
        await policy.ResolveAsync(Heartbeat);
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(2) }).AsTask();

        cluster.Time.Advance(TimeSpan.FromSeconds(2));
        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>();
        remote.Dispose();

        owed.Should().ContainSingle("the session is watched again once the start gave up").Which.DroppedHeartbeats.Should().Be(1);
    }

    [Fact]
    public async Task ResolveAsync_ReleaseAnnouncedBetweenTheHeldAnswerAndTheWatch_OwesTheHeartbeatWithoutWaitingForThePoll()
    {
        using var cluster = new LeaseCluster();
        var store = new OwnerQueryHookStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        List<HeartbeatOwedEventArgs> owed = [];
        policy.HeartbeatOwed += (_, e) => owed.Add(e);
        (await b.Registry.StartAsync("other")).Dispose();
        RunHandle running = await a.Registry.StartAsync(Session);

        // b is subscribed (its start subscribed it). Host a releases right after the store answers b that a holds the session, before b watches it.
        store.AfterOwnerQuery = running.Dispose;
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop, "the store said host a held the session");
        await AsyncTestHelpers.WaitUntilAsync(() => owed.Count == 1, TestTime.HangGuard);

        owed.Should().ContainSingle("the watch missed the release, so the store was polled at once, not a poll interval later (the fake clock has not moved)")
            .Which.DroppedHeartbeats.Should().Be(1);
    }


    /// <summary>Hosts a and b on one store, and b's heartbeat policy with the heartbeats it was owed.</summary>
    private sealed class TwoHosts : IDisposable
    {
        private readonly LeaseCluster _cluster = new();
        private readonly LeaseCluster.Host _a;
        private readonly LeaseCluster.Host _b;
        private readonly HeartbeatQueuePolicy _policy;
        private readonly List<HeartbeatOwedEventArgs> _owed = [];

        public TwoHosts()
        {
            _a = _cluster.AddHost("a");
            _b = _cluster.AddHost("b");
            _policy = new HeartbeatQueuePolicy(_b.Registry);
            _policy.HeartbeatOwed += (_, e) => _owed.Add(e);
        }

        public void Deconstruct(out LeaseCluster cluster, out LeaseCluster.Host a, out LeaseCluster.Host b, out HeartbeatQueuePolicy policy, out List<HeartbeatOwedEventArgs> owed)
            => (cluster, a, b, policy, owed) = (_cluster, _a, _b, _policy, _owed);

        public void Dispose()
        {
            _policy.Dispose();
            _cluster.Dispose();
        }
    }

    [Fact]
    public async Task ResolveAsync_ReleaseBetweenTheHeldAnswerAndTheWatchWhileAPollIsInFlight_OwesTheHeartbeatWithoutWaitingForTheNextPoll()
    {
        using PollInFlight hosts = await PollInFlight.StartAsync(dropReleases: false);

        // a releases s1 right after the store answers b that a holds it, before b watches it.
        hosts.Store.AfterOwnerQuery = hosts.Running.Dispose;
        (await hosts.Policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        await AsyncTestHelpers.WaitUntilAsync(() => hosts.OwedCount == 1, TestTime.HangGuard);

        hosts.Owed.Should().ContainSingle("the store was asked about s1 at once, while the poll of x was still held (the fake clock has not moved)")
            .Which.SessionId.Should().Be(Session);
    }

    [Fact]
    public async Task ResolveAsync_ReleaseMissedAndTheStoreReconnectsWhileAPollIsInFlight_PollsAgainOnceThatPollEnds()
    {
        // b starts watching s1 while its poll of x is in flight, so that poll does not look at s1.
        using PollInFlight hosts = await PollInFlight.StartAsync(dropReleases: true);
        (await hosts.Policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);

        // s1's release message is lost; the store then reconnects, which may have lost messages, while the poll still runs.
        hosts.Running.Dispose();
        hosts.Cluster.Store.BeginOutage();
        hosts.Cluster.Store.EndOutage();
        hosts.Store.ReleaseHeldQueries();
        await AsyncTestHelpers.WaitUntilAsync(() => hosts.OwedCount == 1, TestTime.HangGuard);

        hosts.Owed.Should().ContainSingle("the reconnect's poll ran once the poll in flight ended, not a poll interval later (the fake clock has not moved)")
            .Which.SessionId.Should().Be(Session);
    }

    [Fact]
    public async Task ResolveAsync_ReleaseBetweenAStartsHeldAnswerAndItsWithdrawal_OwesTheHeartbeatWithoutWaitingForThePoll()
    {
        using var cluster = new LeaseCluster();
        var store = new ActAfterAcquireStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        List<HeartbeatOwedEventArgs> owed = [];
        policy.HeartbeatOwed += (_, e) => { lock (owed) { owed.Add(e); } };
        (await b.Registry.StartAsync("other")).Dispose();
        RunHandle remote = await a.Registry.StartAsync(Session);

        // b's start is in b's table while its acquire is in flight: a heartbeat is dropped as busy here. Host a releases
        // right after the store answers b that a holds the session.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Gate = gate;
        store.AfterAcquire = remote.Dispose;
        Task<RunHandle> refused = b.Registry.StartAsync(Session).AsTask();
        policy.Resolve(Heartbeat).Action.Should().Be(QueueAction.Drop);
        gate.SetResult();
        await FluentActions.Awaiting(() => refused.Guard()).Should().ThrowAsync<SessionBusyException>();

        await AsyncTestHelpers.WaitUntilAsync(() => { lock (owed) { return owed.Count == 1; } }, TimeSpan.FromSeconds(1));
        lock (owed)
        {
            owed.Should().ContainSingle("the session is idle cluster-wide since a released it (the fake clock has not moved)");
        }
    }

    [Fact]
    public async Task ResolveAsync_APollsIdleAnswerArrivesAfterAnotherHostTookTheSession_NothingIsOwedWhileThatHostHoldsIt()
    {
        // b is deaf (release messages are lost), so only its poll learns that a released the session.
        using var cluster = new LeaseCluster();
        var store = new OwnerQueryHookStore(cluster.Store) { Deaf = true };
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host c = cluster.AddHost("c");
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        List<HeartbeatOwedEventArgs> owed = [];
        policy.HeartbeatOwed += (_, e) => { lock (owed) { owed.Add(e); } };
        RunHandle first = await a.Registry.StartAsync(Session);
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        first.Dispose();

        // b's poll asks the store (idle) and its answer is held; host c takes the session, and b's next heartbeat asks too.
        store.HoldQueriesOf = Session;
        cluster.Time.Advance(LeaseCluster.Poll);
        await AsyncTestHelpers.WaitUntilAsync(() => store.HeldQueries == 1, TestTime.HangGuard);
        using RunHandle second = await c.Registry.StartAsync(Session);
        Task<QueueDecision> next = policy.ResolveAsync(Heartbeat).AsTask();
        await AsyncTestHelpers.WaitUntilAsync(() => store.HeldQueries == 2, TestTime.HangGuard);
        store.ReleaseHeldQueries();

        (await next.Guard()).Action.Should().Be(QueueAction.Drop, "host c holds the session");
        await AsyncTestHelpers.WaitUntilAsync(() => store.AnsweredHeldQueries == 2, TestTime.HangGuard);
        await Task.Delay(50);
        lock (owed)
        {
            owed.Should().BeEmpty("host c runs the session: the poll's idle answer was asked before the heartbeat's own question");
        }

        second.Dispose();
        cluster.Time.Advance(LeaseCluster.Poll);
        await AsyncTestHelpers.WaitUntilAsync(() => { lock (owed) { return owed.Count == 1; } }, TestTime.HangGuard);
        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(2, "once c is done, the next poll owes both");
    }

    /// <summary>
    /// Hosts a and b, b with a policy and an <see cref="OwnerQueryHookStore"/>: a runs x and s1, b watches x, and b's poll
    /// of x is held in the store (in flight) until <see cref="OwnerQueryHookStore.ReleaseHeldQueries"/>.
    /// </summary>
    private sealed class PollInFlight : IDisposable
    {
        private readonly List<HeartbeatOwedEventArgs> _owed = [];
        private RunHandle? _elsewhere;

        private PollInFlight(bool dropReleases)
        {
            Store = new OwnerQueryHookStore(Cluster.Store) { DropReleasesOf = dropReleases ? Session : null };
            A = Cluster.AddHost("a");
            B = Cluster.AddHost("b", store: Store);
            Policy = new HeartbeatQueuePolicy(B.Registry);
            Policy.HeartbeatOwed += (_, e) => { lock (_owed) { _owed.Add(e); } };
        }

        public LeaseCluster Cluster { get; } = new();

        public OwnerQueryHookStore Store { get; }

        public LeaseCluster.Host A { get; }

        public LeaseCluster.Host B { get; }

        public HeartbeatQueuePolicy Policy { get; }

        /// <summary>Gets a's run on s1.</summary>
        public RunHandle Running { get; private set; } = null!;

        public int OwedCount
        {
            get
            {
                lock (_owed)
                {
                    return _owed.Count;
                }
            }
        }

        public List<HeartbeatOwedEventArgs> Owed
        {
            get
            {
                lock (_owed)
                {
                    return [.. _owed];
                }
            }
        }

        public static async Task<PollInFlight> StartAsync(bool dropReleases)
        {
            var hosts = new PollInFlight(dropReleases);
            (await hosts.B.Registry.StartAsync("other")).Dispose();
            hosts._elsewhere = await hosts.A.Registry.StartAsync("x");
            hosts.Running = await hosts.A.Registry.StartAsync(Session);
            (await hosts.Policy.ResolveAsync(new QueueRequest("x", IsHeartbeat: true, QueueMode.Collect))).Action.Should().Be(QueueAction.Drop);
            hosts.Store.HoldQueriesOf = "x";
            hosts.Cluster.Time.Advance(LeaseCluster.Poll);
            await AsyncTestHelpers.WaitUntilAsync(() => hosts.Store.HeldQueries == 1, TestTime.HangGuard);
            return hosts;
        }

        public void Dispose()
        {
            Store.ReleaseHeldQueries();
            _elsewhere?.Dispose();
            Policy.Dispose();
            Cluster.Dispose();
        }
    }
}
