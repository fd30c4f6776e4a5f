using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// Heartbeats owed on a registry with a lease store, where this host's idle says nothing of the cluster: a start of this
/// host waiting for another host's release is about to take the session, and a run superseded or taken over by another
/// host leaves the session busy there.
/// </summary>
public sealed class HeartbeatQueuePolicyRemoteOwedTests
{
    private const string Session = "s1";

    private static readonly QueueRequest Heartbeat = new(Session, IsHeartbeat: true, QueueMode.Collect);

    // Long enough for continuations on pool threads; a condition that must hold is asserted after the wait.
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task HeartbeatOwed_LocalRunEndsWhileAStartWaitsInTheRemoteLine_NotOwedUntilThatStartRuns()
    {
        using var f = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = (f.Cluster, f.A, f.B, f.Policy, f.Owed);

        using RunHandle remote = await a.Registry.StartAsync(Session);
        (await policy.ResolveAsync(Heartbeat)).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileRemote);

        // b's waiting start hears that a holds the session and waits in the line (poll in 5 s).
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        _ = waiting.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default); // observed even if an assertion fails first
        _ = await AsyncTestHelpers.WaitUntilAsync(() => b.Registry.GetQueuedCount(Session) == 1, Settle);
        b.Registry.GetQueuedCount(Session).Should().Be(1);

        // Another start of b takes the session over from a, runs, and ends.
        RunHandle mine = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        mine.Dispose();

        owed.Should().BeEmpty("the start waiting here in the line for another host is about to take the session");

        RunHandle next = await waiting.Guard();
        next.Dispose();
        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(2);
    }

    [Fact]
    public async Task HeartbeatOwed_RunHereSupersededByAnotherHost_NotOwedWhileThatHostRunsTheSession()
    {
        using var f = new TwoHosts();
        (LeaseCluster cluster, LeaseCluster.Host a, LeaseCluster.Host b, HeartbeatQueuePolicy policy, List<HeartbeatOwedEventArgs> owed) = (f.Cluster, f.A, f.B, f.Policy, f.Owed);

        RunHandle mine = await b.Registry.StartAsync(Session);
        (await policy.ResolveAsync(Heartbeat)).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileBusy);

        RunHandle remote = await a.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        _ = await AsyncTestHelpers.WaitUntilAsync(() => b.Registry.ActiveCount == 0, Settle);
        await Task.Run(() => cluster.Time.Advance(LeaseCluster.Renew));
        _ = await AsyncTestHelpers.WaitUntilAsync(() => b.Registry.ActiveCount == 0, Settle);
        b.Registry.ActiveCount.Should().Be(0, "b's run was superseded");
        (await a.Registry.GetSessionOwnerAsync(Session))!.HostId.Should().Be("a");

        owed.Should().BeEmpty("host a runs the session: it is not idle cluster-wide");

        remote.Dispose();
        for (int i = 0; i < 3 && owed.Count == 0; i++)
        {
            await Task.Run(() => cluster.Time.Advance(LeaseCluster.Poll));
            _ = await AsyncTestHelpers.WaitUntilAsync(() => owed.Count > 0, Settle);
        }

        owed.Should().ContainSingle().Which.DroppedHeartbeats.Should().Be(1);
        mine.Dispose();
    }

    [Fact]
    public async Task ResolveAsync_StartOfThisHostWaitingInTheRemoteLine_HeartbeatNotRunNow()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        _ = waiting.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default); // observed even if an assertion fails first
        _ = await AsyncTestHelpers.WaitUntilAsync(() => b.Registry.GetQueuedCount(Session) == 1, Settle);
        b.Registry.GetQueuedCount(Session).Should().Be(1);
        cluster.Store.RemoveLease(Session);

        QueueDecision decision = await policy.ResolveAsync(Heartbeat);

        decision.Action.Should().Be(QueueAction.Drop, "a start of this host waits to take the session (counted by GetQueuedCount)");
        await Task.Run(() => cluster.Time.Advance(LeaseCluster.Poll));
        (await waiting.Guard()).Dispose();
    }

    /// <summary>Hosts a and b on one store, and a heartbeat policy on b recording what it owes.</summary>
    private sealed class TwoHosts : IDisposable
    {
        public TwoHosts()
        {
            A = Cluster.AddHost("a");
            B = Cluster.AddHost("b");
            Policy = new HeartbeatQueuePolicy(B.Registry);
            Policy.HeartbeatOwed += (_, e) =>
            {
                lock (Owed)
                {
                    Owed.Add(e);
                }
            };
        }

        public LeaseCluster Cluster { get; } = new();

        public LeaseCluster.Host A { get; }

        public LeaseCluster.Host B { get; }

        public HeartbeatQueuePolicy Policy { get; }

        public List<HeartbeatOwedEventArgs> Owed { get; } = [];

        public void Dispose()
        {
            Policy.Dispose();
            Cluster.Dispose();
        }
    }
}
