using System.Runtime.CompilerServices;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Zombies do not leak. The registry's ledger keeps small records, never handles, token sources or
/// closures, so once the host (and the hung provider) let go of a zombie, a full GC collects it; the memory the
/// registry keeps is bounded by <see cref="RunSupervisorOptions.MaxAbandonedRuns"/>.
/// </summary>
/// <remarks>
/// Not run in parallel with other tests: they measure the managed heap. Objects are created in non-inlined helpers so
/// that no local of the test method keeps them alive (Debug builds extend locals to the end of their method).
/// </remarks>
[Collection(LeakTestsCollection.Name)]
public sealed class LeakTests
{
    private const int Zombies = 10_000;
    private const int Cap = 1_000;

    /// <summary>How a zombie's run is started.</summary>
    public enum ZombieKind
    {
        /// <summary>Start, then Attach a task that never settles.</summary>
        Attached,

        /// <summary>Start and never dispose the handle, with nothing attached.</summary>
        Unattached,

        /// <summary>RunAsync with a provider whose task never settles.</summary>
        RunAsync,
    }

    [Theory]
    [InlineData(ZombieKind.Attached)]
    [InlineData(ZombieKind.Unattached)]
    [InlineData(ZombieKind.RunAsync)]
    public async Task TenThousandEvictedZombies_HostDropsHandles_HandlesAreCollectedAndLedgerIsCapped(ZombieKind kind)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.FromSeconds(5), MaxAbandonedRuns = Cap };
        using var registry = new ActiveRunRegistry(options, time);
        int ended = 0;
        registry.RunEnded += (_, e) => Interlocked.Increment(ref ended);

        FlushFinalizers();
        long baseline = GC.GetTotalMemory(forceFullCollection: true);

        // The host awaits its RunAsync calls through a counting continuation rather than keeping the tasks in a
        // local: an async test method keeps its locals alive across awaits, which would measure the test, not the registry.
        using var observer = new EvictionObserver(Zombies);
        WeakReference[] handles = StartZombies(registry, kind, observer);
        if (kind == ZombieKind.RunAsync)
        {
            // The providers are invoked on the thread pool; the zombies exist once every provider has returned its task.
            await WaitForInvocationsAsync();
        }

        long withZombies = GC.GetTotalMemory(forceFullCollection: true);

        // Every zombie is evicted at deadline + grace, in one step of the clock.
        time.Advance(options.RunTimeout + options.GracePeriod);
        registry.ActiveCount.Should().Be(0);
        Volatile.Read(ref ended).Should().Be(Zombies);
        if (kind == ZombieKind.RunAsync)
        {
            (await observer.AllEvicted.WaitAsync(TestTime.HangGuard)).Should().Be(Zombies, "every RunAsync call throws RunEvictedException at deadline + grace");
        }

        registry.AbandonedCount.Should().Be(Cap, "the ledger is capped at MaxAbandonedRuns; the oldest are forgotten");
        IReadOnlyList<AbandonedRunInfo> ledger = registry.GetAbandonedRuns();
        ledger.Should().HaveCount(Cap);
        ledger.Select(r => r.RunId).Should().OnlyHaveUniqueItems();

        // All were due at the same instant, so which 1,000 are remembered is the eviction order among equals.
        ledger.Select(r => r.EvictedAt).Distinct().Should().ContainSingle();
        ledger = [];

        // The host and the hung providers let go. Nothing in the registry may keep a handle alive.
        FlushFinalizers();
        handles.Count(h => h.IsAlive).Should().Be(0, "the ledger holds records, not handles, token sources or closures");

        long afterEviction = GC.GetTotalMemory(forceFullCollection: true);
        long retained = afterEviction - baseline;
        long perZombieWhileHeld = (withZombies - baseline) / Zombies;

        // A ledger record is ~200 bytes (record, list node, dictionary slot); a live zombie costs far more.
        retained.Should().BeLessThan((Cap * 1024) + (1024 * 1024), "the registry keeps at most MaxAbandonedRuns small records ({0} bytes per held zombie before eviction)", perZombieWhileHeld);
        GC.KeepAlive(registry);
    }

    [Fact]
    public void TenThousandForgottenZombies_FaultLater_EveryExceptionIsObserved()
    {
        using var probe = new UnobservedTaskExceptionProbe();
        string marker = $"late zombie fault {Guid.NewGuid()}";
        string control = $"{UnobservedTaskExceptionGuard.ControlFaultPrefix}{Guid.NewGuid()}";
        var time = new FakeTimeProvider();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.Zero, MaxAbandonedRuns = 10 }, time);

        EvictThenFault(registry, time, marker);
        UnobservedTaskExceptionProbe.DropUnobservedFault(control);
        FlushFinalizers();

        probe.Saw(control).Should().BeTrue("the probe must see an unobserved fault, or this test proves nothing");
        probe.Saw(marker).Should().BeFalse("the registry observes every abandoned provider's exception, forgotten by the ledger or not");
        registry.AbandonedCount.Should().Be(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference[] StartZombies(ActiveRunRegistry registry, ZombieKind kind, EvictionObserver observer)
    {
        var handles = new WeakReference[Zombies];
        for (int i = 0; i < Zombies; i++)
        {
            string session = $"zombie-{i}";
            switch (kind)
            {
                case ZombieKind.Attached:
                {
                    RunHandle run = registry.Start(session);
                    run.Attach(new TaskCompletionSource().Task);
                    handles[i] = new WeakReference(run);
                    break;
                }

                case ZombieKind.Unattached:
                    handles[i] = new WeakReference(registry.Start(session));
                    break;

                default:
                {
                    // The run's handle is RunAsync's own; the provider's token (and its source) is what can leak.
                    var provider = new ZombieProvider();
                    observer.Observe(registry.RunAsync(session, provider.CallAsync));
                    handles[i] = new WeakReference(provider);
                    break;
                }
            }
        }

        return handles;
    }

    private static async Task WaitForInvocationsAsync()
    {
        await ZombieProvider.AllInvoked(Zombies).WaitAsync(TestTime.HangGuard);
        ZombieProvider.Reset();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void EvictThenFault(ActiveRunRegistry registry, FakeTimeProvider time, string marker)
    {
        var providers = new List<TaskCompletionSource>();
        for (int i = 0; i < Zombies; i++)
        {
            var provider = new TaskCompletionSource();
            registry.Start($"z{i}").Attach(provider.Task);
            providers.Add(provider);
        }

        time.Advance(TimeSpan.FromMinutes(1));
        registry.ActiveCount.Should().Be(0);
        registry.AbandonedCount.Should().Be(10);
        foreach (TaskCompletionSource provider in providers)
        {
            provider.SetException(new InvalidOperationException(marker));
        }
    }

    private static void FlushFinalizers() => UnobservedTaskExceptionGuard.FlushFinalizers();

    /// <summary>Counts RunAsync calls that failed with <see cref="RunEvictedException"/>, observing every fault.</summary>
    private sealed class EvictionObserver : IDisposable
    {
        private readonly int _expected;
        private readonly TaskCompletionSource<int> _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _evicted;
        private int _settled;

        public EvictionObserver(int expected) => _expected = expected;

        public Task<int> AllEvicted => _all.Task;

        public void Observe(Task call)
            => call.ContinueWith(
                static (t, state) =>
                {
                    var self = (EvictionObserver)state!;
                    if (t.Exception?.InnerException is RunEvictedException)
                    {
                        Interlocked.Increment(ref self._evicted);
                    }

                    if (Interlocked.Increment(ref self._settled) == self._expected)
                    {
                        self._all.TrySetResult(Volatile.Read(ref self._evicted));
                    }
                },
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);

        public void Dispose() => _all.TrySetCanceled();
    }

    /// <summary>A hung provider that keeps the token it was given (as a real client would) and never settles.</summary>
    private sealed class ZombieProvider
    {
        private static int _invoked;
        private static TaskCompletionSource _allInvoked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private static int _expected = int.MaxValue;
        private readonly TaskCompletionSource<int> _never = new();
        private CancellationToken _token;

        public static Task AllInvoked(int count)
        {
            Volatile.Write(ref _expected, count);
            if (Volatile.Read(ref _invoked) >= count)
            {
                _allInvoked.TrySetResult();
            }

            return _allInvoked.Task;
        }

        public static void Reset()
        {
            _invoked = 0;
            _expected = int.MaxValue;
            _allInvoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public Task<int> CallAsync(CancellationToken token)
        {
            _token = token;
            if (Interlocked.Increment(ref _invoked) >= Volatile.Read(ref _expected))
            {
                _allInvoked.TrySetResult();
            }

            return _never.Task;
        }

        public override string ToString() => $"zombie provider (token cancelled: {_token.IsCancellationRequested})";
    }
}

/// <summary>The leak tests measure the heap: they run alone, after the parallel collections.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LeakTestsCollection
{
    public const string Name = "Leak tests (not parallel)";
}
