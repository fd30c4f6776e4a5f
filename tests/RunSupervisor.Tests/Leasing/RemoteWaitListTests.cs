using FluentAssertions;
using Microsoft.Extensions.Time.Testing;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// This host's leased starts waiting for a session another host runs (<see cref="RemoteWaitList"/>): first in first
/// out, counted as queued, bounded by the session's queue limit, and cancelled by a drain like the local queue's.
/// </summary>
public sealed class RemoteWaitListTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions WaitMinute = new() { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) };

    [Fact]
    public async Task StartAsync_TwoStartsOfOneHostWaitForAnotherHost_TheOlderIsAdmittedFirst()
    {
        // Without release messages each start would retry at its own poll: the younger one's (8 s) before the older's (10 s).
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: new ForwardingLeaseStore(cluster.Store) { Deaf = true });
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> older = b.Registry.StartAsync(Session, WaitMinute).AsTask();
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(3));
        Task<RunHandle> younger = b.Registry.StartAsync(Session, WaitMinute).AsTask();
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(3));

        remote.Dispose();

        // Both polls come in this one advance, the younger start's first.
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(10));

        RunHandle first = await older.Guard();
        first.IsCurrent.Should().BeTrue("the older start of this host waits for the session since before the younger one came");
        younger.IsCompleted.Should().BeFalse("it waits behind the older start's run now");
        first.Dispose();
        using RunHandle second = await younger.Guard();
        second.RunId.Should().BeGreaterThan(first.RunId);
    }

    [Fact]
    public async Task GetQueuedCount_StartsWaitingForAnotherHost_AreCountedAndBoundedByMaxQueuedPerSession()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", o => o.MaxQueuedPerSession = 2);
        using RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> first = b.Registry.StartAsync(Session, WaitMinute).AsTask();
        Task<RunHandle> second = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        b.Registry.GetQueuedCount(Session).Should().Be(2);
        RunQueueFullException full = (await FluentActions.Awaiting(() => b.Registry.StartAsync(Session, WaitMinute).AsTask().Guard()).Should().ThrowAsync<RunQueueFullException>()).Which;
        full.SessionId.Should().Be(Session);
        first.IsCompleted.Should().BeFalse();
        second.IsCompleted.Should().BeFalse();
        b.Registry.Dispose();
        await FluentActions.Awaiting(() => first.Guard()).Should().ThrowAsync<ObjectDisposedException>();
        await FluentActions.Awaiting(() => second.Guard()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task StartAsync_QueueOverflowCancelOldest_PushesOutTheOldestStartWaitingForAnotherHost()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", OneWaiterCancelOldest);
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> oldest = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        Task<RunHandle> newest = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        (await FluentActions.Awaiting(() => oldest.Guard()).Should().ThrowAsync<RunQueueFullException>()).Which.Message.Should().Contain("cancelled to make room");
        remote.Dispose();
        using RunHandle admitted = await newest.Guard();
        admitted.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task DrainAsync_CancelWaiting_CancelsAStartWaitingForAnotherHostAndListsIt()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> waiting = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        DrainResult drained = await b.Registry.DrainAsync(TimeSpan.Zero, new DrainOptions { CancelWaiting = true }).Guard();

        drained.CancelledStarts.Should().Equal([Session], "the start was waiting for its session when the drain began");
        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>();
        remote.Dispose();
        b.Registry.ActiveCount.Should().Be(0, "the cancelled start never runs on the draining host");
        b.Registry.GetQueuedCount(Session).Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_ForegroundWaitBehindABackgroundWaitQueuedBehindThisHostsBackgroundRun_PreemptsTheRun()
    {
        // Waiting behind this host's own runs is the local queue's business: its rules (preemption here) still apply.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle background = await b.Registry.StartAsync(Session, new RunStartOptions { Background = true });
        Task<RunHandle> backgroundWaiter = b.Registry.StartAsync(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();

        using RunHandle user = await b.Registry.StartAsync(Session, WaitMinute).AsTask().Guard();

        (await background.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        user.IsCurrent.Should().BeTrue();
        b.Registry.Dispose();
        await FluentActions.Awaiting(() => backgroundWaiter.Guard()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task StartAsync_CancelOldestWithTheSessionQueueFullBehindThisHostsRun_PushesOutTheOldestLocalStart()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b", OneWaiterCancelOldest);
        using RunHandle running = await b.Registry.StartAsync(Session);
        Task<RunHandle> older = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        Task<RunHandle> newer = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        (await FluentActions.Awaiting(() => older.Guard()).Should().ThrowAsync<RunQueueFullException>()).Which.SessionId.Should().Be(Session);
        newer.IsCompleted.Should().BeFalse("with CancelOldest the newest start waits and the oldest is pushed out");
        b.Registry.GetQueuedCount(Session).Should().Be(1);
        b.Registry.Dispose();
        await FluentActions.Awaiting(() => newer.Guard()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task StartAsync_CancelOldestWhileTheLinesHeadWaitsInTheLocalQueue_PushesOutTheOldestInsteadOfRefusingTheNewest()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", OneWaiterCancelOldest, new ForwardingLeaseStore(cluster.Store) { Deaf = true });
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> oldest = b.Registry.StartAsync(Session, WaitMinute).AsTask();
        remote.Dispose();

        // The line's head waits for its poll (no release message); meanwhile a start of this host takes the session.
        using RunHandle local = await b.Registry.StartAsync(Session);
        await AdvanceAsync(cluster, LeaseCluster.Poll);
        oldest.IsCompleted.Should().BeFalse("the head retried into this host's own run and waits in the local queue");
        b.Registry.GetQueuedCount(Session).Should().Be(1);

        Task<RunHandle> newest = b.Registry.StartAsync(Session, WaitMinute).AsTask();

        newest.IsCompleted.Should().BeFalse("CancelOldest never refuses the newest start: it waits, as without a store");
        await FluentActions.Awaiting(() => oldest.Guard()).Should().ThrowAsync<RunQueueFullException>("CancelOldest pushes out the oldest waiting start");
        local.Dispose();
        using RunHandle admitted = await newest.Guard();
        admitted.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_WaitedInLineThenTimedOutBehindTheOlderStartsRun_WaitedIsTheWholeWait()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        RunHandle remote = await a.Registry.StartAsync(Session);
        Task<RunHandle> older = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(5) }).AsTask();
        Task<RunHandle> younger = b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(60) }).AsTask();
        await AdvanceAsync(cluster, TimeSpan.FromSeconds(30));

        remote.Dispose();
        using RunHandle first = await older.Guard();

        // Its turn reaches it on a pool thread: it must be in the local queue before the clock moves on.
        (await AsyncTestHelpers.WaitUntilAsync(() => b.Registry.GetQueueSnapshot()[0].Waiting > 0)).Should().BeTrue();

        await AdvanceAsync(cluster, TimeSpan.FromSeconds(30));

        RunQueueTimeoutException timedOut = (await FluentActions.Awaiting(() => younger.Guard()).Should().ThrowAsync<RunQueueTimeoutException>()).Which;
        timedOut.Waited.Should().Be(TimeSpan.FromSeconds(60), "thirty seconds in line behind the older start, thirty behind its run");
    }

    /// <summary>One waiting start per session, the oldest pushed out to make room.</summary>
    private static void OneWaiterCancelOldest(RunSupervisorOptions options)
    {
        options.MaxQueuedPerSession = 1;
        options.QueueOverflow = QueueOverflowBehavior.CancelOldest;
    }

    /// <summary>Advances the shared clock off the test's synchronization context, so the waits it ends resume inline.</summary>
    private static Task AdvanceAsync(LeaseCluster cluster, TimeSpan by) => Task.Run(() => cluster.Time.Advance(by));

    [Fact]
    public async Task DrainAsync_CancelWaitingAsAWokenStartIsAboutToEnter_TheStartFailsAndDoesNotRunAfterTheDrain()
    {
        var time = new StackHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var a = new ActiveRunRegistry(LeaseCluster.HostOptions("a"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        using var b = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        RunHandle remote = await a.StartAsync(Session);
        Task<RunHandle> waiting = b.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        await AsyncTestHelpers.WaitUntilAsync(() => b.GetQueuedCount(Session) == 1, TestTime.HangGuard);

        // The drain that cancels waiting starts comes just as host a's release wakes the waiting start, before it enters b's table.
        Task<DrainResult>? drain = null;
        time.OnReadFrom("StartLeasedAsync", () => drain = b.DrainAsync(TimeSpan.FromSeconds(30), new DrainOptions { CancelWaiting = true }));
        remote.Dispose();
        await AsyncTestHelpers.WaitUntilAsync(() => waiting.IsCompleted, TestTime.HangGuard);
        time.HookRan.Should().BeTrue();
        DrainResult result = await drain!.Guard();

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>("the start waited when the drain cancelled waiting starts");
        b.ActiveCount.Should().Be(0, "the drain neither listed nor waited for it, so it must not run after it");
        result.Runs.Should().BeEmpty();
        (await store.GetOwnerAsync(Session)).Should().BeNull("the start withdrew before it asked the store");
    }

    [Fact]
    public async Task Dispose_AsAWokenStartIsAboutToEnter_TheStartFailsWithObjectDisposed()
    {
        var time = new StackHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var a = new ActiveRunRegistry(LeaseCluster.HostOptions("a"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        var b = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        RunHandle remote = await a.StartAsync(Session);
        Task<RunHandle> waiting = b.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        await AsyncTestHelpers.WaitUntilAsync(() => b.GetQueuedCount(Session) == 1, TestTime.HangGuard);

        time.OnReadFrom("StartLeasedAsync", b.Dispose);
        remote.Dispose();
        await AsyncTestHelpers.WaitUntilAsync(() => waiting.IsCompleted, TestTime.HangGuard);
        time.HookRan.Should().BeTrue();
        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<ObjectDisposedException>();
        (await store.GetOwnerAsync(Session)).Should().BeNull();
    }

    /// <summary>A fake clock that runs an action once, on the first read made directly from an async method named <c>from</c>.</summary>
    private sealed class StackHookClock(DateTimeOffset start) : FakeTimeProvider(start)
    {
        private string? _from;
        private Action? _hook;

        public bool HookRan { get; private set; }

        public void OnReadFrom(string from, Action hook)
        {
            _hook = hook;
            Volatile.Write(ref _from, from);
        }

        public override long GetTimestamp()
        {
            if (Volatile.Read(ref _from) is { } from)
            {
                var trace = new System.Diagnostics.StackTrace();
                foreach (System.Diagnostics.StackFrame frame in trace.GetFrames())
                {
                    System.Reflection.MethodBase? method = frame.GetMethod();
                    string type = method?.DeclaringType?.Name ?? string.Empty;
                    if (method is null || type.Contains("TimeProvider", StringComparison.Ordinal) || type == "StackHookClock" || type == "RegistryClock" || method.Name == "NowTicks")
                    {
                        continue;
                    }

                    if (type.Contains("<" + from + ">", StringComparison.Ordinal) && Interlocked.CompareExchange(ref _from, null, from) == from)
                    {
                        _hook!();
                        HookRan = true;
                    }

                    break;
                }
            }

            return base.GetTimestamp();
        }
    }
}
