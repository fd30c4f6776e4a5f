using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>A leased start that waits for a session another host runs: how long it waits, and what its retries keep of its options.</summary>
public sealed class LeasedStartWaitTests
{
    private const string Session = "s1";

    [Fact]
    public async Task StartAsync_WaitUntilExactlyItsQueueTimeout_ThrowsRunQueueTimeoutWithTheWholeWait()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle remote = await a.Registry.StartAsync(Session);
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(2));

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(10) }).AsTask();
        await AdvanceAsync(cluster, LeaseCluster.Poll);
        waiting.IsCompleted.Should().BeFalse("the first poll found the session still held, with five seconds left");
        await AdvanceAsync(cluster, LeaseCluster.Poll);

        RunQueueTimeoutException timedOut = (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>()).Which;
        timedOut.SessionId.Should().Be(Session);
        timedOut.Waited.Should().Be(TimeSpan.FromSeconds(10));
        b.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_WaitWithLessThanAPollIntervalLeft_GivesUpWhenItsQueueTimeoutEnds()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle remote = await a.Registry.StartAsync(Session);

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(8) }).AsTask();
        await AdvanceAsync(cluster, LeaseCluster.Poll);
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(3) - AsyncTestHelpers.Tick);
        waiting.IsCompleted.Should().BeFalse();
        await AdvanceAsync(cluster, AsyncTestHelpers.Tick);

        // The second wait lasts only the three seconds left, not a whole poll interval: the clock stops at 8 s.
        RunQueueTimeoutException timedOut = (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>()).Which;
        timedOut.Waited.Should().Be(TimeSpan.FromSeconds(8));
    }

    [Fact]
    public async Task StartAsync_WaitRetriesIntoALocalRun_QueuesLocallyUntilTheOriginalQueueTimeout()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(10) }).AsTask();
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(1));

        // While the first start waits for host a, a second start here takes the session over.
        using RunHandle local = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        (await remote.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(4));

        waiting.IsCompleted.Should().BeFalse("the retry at 5 s still waits (now behind the local run), as its options say");
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(5) - AsyncTestHelpers.Tick);
        waiting.IsCompleted.Should().BeFalse();
        await AdvanceAsync(cluster, AsyncTestHelpers.Tick);

        RunQueueTimeoutException timedOut = (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>("the retry may wait only what is left of the ten seconds")).Which;
        timedOut.Waited.Should().Be(TimeSpan.FromSeconds(10), "five seconds for the other host, then five in this host's queue: the whole wait");
        local.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_BackgroundWaitForARemoteRun_AdmittedStillAsABackgroundRun()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        ValueTask<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) });
        remote.Dispose();
        RunHandle background = await waiting.AsTask().Guard();

        using RunHandle user = await b.Registry.StartAsync(Session);

        (await background.Completion.Guard()).Should().Be(RunEndReason.Superseded, "a foreground start preempts a background run");
        b.LogsWithEvent("RunPreempted").Should().ContainSingle();
        user.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_QueuedLocallyBehindAStartRefusedByTheStore_AdmittedOnceTheOtherHostReleases()
    {
        using var cluster = new LeaseCluster();
        var gated = new GatedLeaseStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: gated);
        RunHandle remote = await a.Registry.StartAsync(Session);
        gated.HoldAcquires = true;

        Task<RunHandle> refused = b.Registry.StartAsync(Session).AsTask();
        gated.HoldAcquires = false;
        Task<RunHandle> queued = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        gated.Open();

        (await FluentActions.Awaiting(() => refused.Guard()).Should().ThrowAsync<SessionBusyException>()).Which.OwnerHostId.Should().Be("a");
        remote.Dispose();
        using RunHandle admitted = await queued.Guard();
        admitted.FencingToken.Should().BeGreaterThan(remote.FencingToken);
        (await cluster.Store.GetOwnerAsync(Session))!.HostId.Should().Be("b");
    }

    [Fact]
    public async Task StartAsync_CallerCancelsWhileWaitingForAnotherHost_ThrowsWithTheCallersToken()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle remote = await a.Registry.StartAsync(Session);
        using var cts = new CancellationTokenSource();
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }, cts.Token).AsTask();

        await cts.CancelAsync();

        (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
    }

    [Fact]
    public async Task StartAsync_ReleaseAnnouncedBetweenTheHeldAnswerAndTheWait_AdmittedWithoutWaitingForThePoll()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var store = new ActOnHeldStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        RunHandle remote = await a.Registry.StartAsync(Session);
        store.OnHeld = remote.Dispose;

        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();

        using RunHandle admitted = await waiting.Guard();
        admitted.IsCurrent.Should().BeTrue("the release woke it, with no poll: the clock never moved");
    }

    [Fact]
    public async Task StartAsync_RegistryDisposedWhileAWaitingStartsAcquireIsInFlight_FailsAtOnceWithObjectDisposedException()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var gated = new GatedLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: gated);
        using RunHandle remote = await a.Registry.StartAsync(Session);
        gated.HoldAcquires = true;
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();

        b.Registry.Dispose();
        gated.Open();

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<ObjectDisposedException>("disposal fails every waiting start, without waiting for a poll");
    }

    /// <summary>
    /// Advances the shared clock off the test's synchronization context, so the waits it ends resume inline: a start's
    /// retry has asked the store again and armed its next wait before this returns.
    /// </summary>
    private static Task AdvanceAsync(LeaseCluster cluster, TimeSpan by) => Task.Run(() => cluster.Time.Advance(by));

    [Fact]
    public async Task StartAsync_TwoWaitingStartsQueuedLocally_TheOlderTakesTheSessionFirstWhenTheOtherHostReleases()
    {
        using var cluster = new LeaseCluster();
        var store = new HoldOneAcquireStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        var wait = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) };

        // Two starts wait, oldest first, in b's local queue behind b's own run.
        using RunHandle local = await b.Registry.StartAsync(Session);
        Task<RunHandle> older = b.Registry.StartAsync(Session, wait).AsTask();
        Task<RunHandle> newer = b.Registry.StartAsync(Session, wait).AsTask();
        b.Registry.GetQueuedCount(Session).Should().Be(2);

        // Host a supersedes b's run: the older start is admitted and asks the store, which says a holds the session;
        // that answer is held on its way back while a releases.
        store.HoldNext = true;
        RunHandle remote = await a.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        await AsyncTestHelpers.WaitUntilAsync(() => store.HeldAcquires == 1, TestTime.HangGuard);
        remote.Dispose();
        store.ReleaseHeld();

        await AsyncTestHelpers.WaitUntilAsync(() => older.IsCompleted || newer.IsCompleted, TestTime.HangGuard);

        older.IsCompletedSuccessfully.Should().BeTrue("the older start takes the session first (first in, first out); newer: {0}", newer.Status);
        newer.IsCompleted.Should().BeFalse();
        b.Registry.GetQueuedCount(Session).Should().Be(1);
        (await older).Dispose();
        (await newer.Guard()).Dispose();
    }

    /// <summary>A store that runs <see cref="OnHeld"/> once, after the shared store answered an acquire "held" and before that answer reaches the caller.</summary>
    private sealed class ActOnHeldStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        private int _fired;

        public Action? OnHeld { get; set; }

        public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
        {
            RunLeaseAcquireResult result = await Inner.AcquireAsync(request, cancellationToken);
            if (!result.IsAcquired && Interlocked.Exchange(ref _fired, 1) == 0)
            {
                OnHeld?.Invoke();
            }

            return result;
        }
    }

    /// <summary>A store that holds the answer of the next acquire until <see cref="ReleaseHeld"/>.</summary>
    private sealed class HoldOneAcquireStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _holdNext;
        private int _heldAcquires;

        public bool HoldNext
        {
            get => Volatile.Read(ref _holdNext) != 0;
            set => Volatile.Write(ref _holdNext, value ? 1 : 0);
        }

        public int HeldAcquires => Volatile.Read(ref _heldAcquires);

        public void ReleaseHeld() => _held.TrySetResult();

        public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
        {
            RunLeaseAcquireResult result = await Inner.AcquireAsync(request, cancellationToken);
            if (Interlocked.Exchange(ref _holdNext, 0) != 0)
            {
                Interlocked.Increment(ref _heldAcquires);
                await _held.Task;
            }

            return result;
        }
    }
}
