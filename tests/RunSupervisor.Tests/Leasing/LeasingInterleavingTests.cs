using FluentAssertions;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// Interleavings of a leased host's polls, drains and remote-wait line with its local transitions, each forced at one
/// point by a store or clock hook: a poll's answer against a heartbeat's renewed watch, a drain against a start admitted
/// from the line, and a start sent behind older ones against its queue timeout.
/// </summary>
public sealed class LeasingInterleavingTests
{
    [Fact]
    public async Task Poll_SecondSessionAskedAfterAHeartbeatRenewedItsWatch_IdleAnswerOwesTheDroppedHeartbeats()
    {
        // b is deaf: only its poll learns of releases.
        using var cluster = new LeaseCluster();
        var store = new HoldFirstOwnerQueryStore(cluster.Store) { Deaf = true };
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        List<HeartbeatOwedEventArgs> owed = [];
        policy.HeartbeatOwed += (_, e) => { lock (owed) { owed.Add(e); } };
        var runs = new Dictionary<string, RunHandle>
        {
            ["s1"] = await a.Registry.StartAsync("s1"),
            ["s2"] = await a.Registry.StartAsync("s2"),
        };
        (await policy.ResolveAsync(new QueueRequest("s1", IsHeartbeat: true, QueueMode.Collect))).Action.Should().Be(QueueAction.Drop);
        (await policy.ResolveAsync(new QueueRequest("s2", IsHeartbeat: true, QueueMode.Collect))).Action.Should().Be(QueueAction.Drop);

        // The poll snapshots both watches and its first question is held.
        store.HoldNext = true;
        cluster.Time.Advance(LeaseCluster.Poll);
        await AsyncTestHelpers.WaitUntilAsync(() => store.HeldSession is not null, TestTime.HangGuard);
        string first = store.HeldSession!;
        string second = first == "s1" ? "s2" : "s1";

        // Meanwhile a heartbeat for the other session is dropped (a still runs it), then a ends it (message lost).
        (await policy.ResolveAsync(new QueueRequest(second, IsHeartbeat: true, QueueMode.Collect))).Action.Should().Be(QueueAction.Drop);
        runs[second].Dispose();

        // The poll goes on and asks about the other session now, after the release: idle.
        store.ReleaseHeld();
        await AsyncTestHelpers.WaitUntilAsync(() => { lock (owed) { return owed.Count > 0; } }, TestTime.HangGuard);

        lock (owed)
        {
            owed.Should().ContainSingle("the poll asked about {0} after the heartbeat and the release, and the store said idle", second)
                .Which.DroppedHeartbeats.Should().Be(2);
        }

        runs[first].Dispose();
    }

    [Fact]
    public async Task StartAsync_AppendedBehindAnOlderStartThatLeavesAtOnce_LocalRetryKeepsOnlyWhatIsLeftOfItsQueueTimeout()
    {
        var time = new MethodHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var shared = new InMemoryRunLeaseStore(time);
        var store = new HoldNthAcquireStore(shared, 1);
        RunSupervisorOptions bOptions = LeaseCluster.HostOptions("b");
        bOptions.MaxQueuedPerSession = 2;
        bOptions.QueueOverflow = QueueOverflowBehavior.CancelOldest;
        using var a = new ActiveRunRegistry(LeaseCluster.HostOptions("a"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, shared);
        using var b = new ActiveRunRegistry(bOptions, time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        var wait = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(10) };
        // The line itself, read for the hook's moment only: two starts in it, the newer one just sent behind the older.
        var line = (RemoteWaitList)typeof(ActiveRunRegistry).GetField("_remoteWaitList", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(b)!;
        _ = await a.StartAsync("s1");

        // A refused start holds b's session while two waiting starts queue behind it for eight seconds.
        Task<RunHandle> refused = b.StartAsync("s1").AsTask();
        await AsyncTestHelpers.WaitUntilAsync(() => store.Held, TestTime.HangGuard);
        Task<RunHandle> older = b.StartAsync("s1", wait).AsTask();
        Task<RunHandle> newer = b.StartAsync("s1", wait).AsTask();
        await Task.Run(() => time.Advance(TimeSpan.FromSeconds(8)));

        // As the newer start withdraws behind the older one (in line for host a), a third start pushes the older one out
        // and a supersede here takes the session: the newer start is the line's head at once and queues locally.
        Task<RunHandle>? third = null;
        RunHandle? local = null;
        time.OnReadFrom("Withdraw", () => line.CountWaiting("s1") == 2, () =>
        {
            third = b.StartAsync("s1", wait).AsTask();
            local = b.StartAsync("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).AsTask().Result;
        });
        store.Open();
        await AsyncTestHelpers.WaitUntilAsync(() => time.HookRan && b.GetQueuedCount("s1") == 2 && older.IsCompleted, TestTime.HangGuard);
        time.HookRan.Should().BeTrue();
        (await FluentActions.Awaiting(() => older.Guard()).Should().ThrowAsync<RunQueueFullException>()).Which.Should().NotBeNull();

        await Task.Run(() => time.Advance(TimeSpan.FromSeconds(2) + TimeSpan.FromMilliseconds(1)));
        await AsyncTestHelpers.WaitUntilAsync(() => newer.IsCompleted, TimeSpan.FromSeconds(1));

        newer.IsCompleted.Should().BeTrue("the newer start has waited 10 s, its whole queue timeout");
        (await FluentActions.Awaiting(() => newer.Guard()).Should().ThrowAsync<RunQueueTimeoutException>()).Which.Waited.Should().BeLessThan(TimeSpan.FromSeconds(11));
        local?.Dispose();
        b.Dispose();

        // Both end with the registry's disposal at the latest; awaited so that neither is left unobserved.
        await FluentActions.Awaiting(() => refused.Guard()).Should().ThrowAsync<Exception>();
        await FluentActions.Awaiting(() => third!.Guard()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task DrainAsync_CancelWaitingAsARunEndsAndAdmitsALeasedStartFromTheLine_TheStartFailsAndIsNotReportedAsARun()
    {
        var time = new MethodHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var a = new ActiveRunRegistry(LeaseCluster.HostOptions("a"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        using var b = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, store);
        _ = await a.StartAsync("s1");

        // A start here waits in the line for host a; then a supersede here takes the session, and the start's next try
        // queues locally behind it (in the line, trying).
        Task<RunHandle> waiting = b.StartAsync("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
        await AsyncTestHelpers.WaitUntilAsync(() => b.GetQueuedCount("s1") == 1, TestTime.HangGuard);
        RunHandle local = await b.StartAsync("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        await Task.Run(() => time.Advance(LeaseCluster.Poll));
        await AsyncTestHelpers.WaitUntilAsync(() => b.GetQueuedCount("s1") == 1 && b.ActiveCount == 1, TestTime.HangGuard);

        // The local run ends between the drain's failing the line and its listing: the start is admitted.
        time.OnReadFrom("CancelAllWaitingThenList", local.Dispose);
        DrainResult result = await b.DrainAsync(TimeSpan.FromSeconds(30), new DrainOptions { CancelWaiting = true }).Guard();
        time.HookRan.Should().BeTrue();
        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>();

        // Whether it is also listed among the cancelled starts depends on whether it withdrew before the drain listed the
        // runs (then the drain never saw it) or after (then it is reported cancelled): either way it is not a run.
        result.Runs.Should().BeEmpty("the local run ended before the drain listed its runs, and the withdrawn start never ran");
        result.CancelledStarts.Should().HaveCountLessThanOrEqualTo(1);
        b.ActiveCount.Should().Be(0);
    }

    /// <summary>A fake clock that runs a hook once, on the first read made with a method of the given name on the stack (and a condition true).</summary>
    private sealed class MethodHookClock(DateTimeOffset start) : Microsoft.Extensions.Time.Testing.FakeTimeProvider(start)
    {
        private string? _from;
        private Action? _hook;
        private Func<bool> _when = static () => true;

        public bool HookRan { get; private set; }

        public void OnReadFrom(string from, Action hook) => OnReadFrom(from, static () => true, hook);

        public void OnReadFrom(string from, Func<bool> when, Action hook)
        {
            _hook = hook;
            _when = when;
            Volatile.Write(ref _from, from);
        }

        public override long GetTimestamp()
        {
            string? from = Volatile.Read(ref _from);
            if (from is not null)
            {
                foreach (System.Diagnostics.StackFrame frame in new System.Diagnostics.StackTrace().GetFrames())
                {
                    if (frame.GetMethod()?.Name == from && _when() && Interlocked.CompareExchange(ref _from, null, from) == from)
                    {
                        _hook!();
                        HookRan = true;
                        break;
                    }
                }
            }

            return base.GetTimestamp();
        }
    }

    /// <summary>A store that holds the answer of its n-th acquire until <see cref="Open"/>.</summary>
    private sealed class HoldNthAcquireStore(IRunLeaseStore inner, int n) : ForwardingLeaseStore(inner)
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _calls;
        private int _held;

        public bool Held => Volatile.Read(ref _held) != 0;

        public void Open() => _gate.TrySetResult();

        public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
        {
            RunLeaseAcquireResult result = await Inner.AcquireAsync(request, cancellationToken);
            if (Interlocked.Increment(ref _calls) == n)
            {
                Volatile.Write(ref _held, 1);
                await _gate.Task;
            }

            return result;
        }
    }

    /// <summary>A store that holds the answer of the next owner query once asked to, until <see cref="ReleaseHeld"/>.</summary>
    private sealed class HoldFirstOwnerQueryStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _holdNext;
        private string? _heldSession;

        public bool HoldNext { set => Volatile.Write(ref _holdNext, value ? 1 : 0); }

        public string? HeldSession => Volatile.Read(ref _heldSession);

        public void ReleaseHeld() => _held.TrySetResult();

        public override async ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
        {
            RunLeaseInfo? owner = await Inner.GetOwnerAsync(sessionId, cancellationToken);
            if (Interlocked.Exchange(ref _holdNext, 0) != 0)
            {
                Volatile.Write(ref _heldSession, sessionId);
                await _held.Task;
            }

            return owner;
        }
    }
}
