using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The details the mutation run showed no test pinned down — messages, default abort reasons,
/// validation order, exact boundaries, disposal of the timer and the meter, the deadline heap under load, and the
/// paths a synchronously-firing fake clock hides (a time provider whose timers never fire on their own).
/// </summary>
public sealed class ContractDetailTests
{
    private const string Session = "detail";

    // ---------------------------------------------------------------------------------------------------------
    // Messages
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void Exceptions_Messages_NameSessionRunAndDuration()
    {
        new RunEvictedException("s", 7, TimeSpan.FromSeconds(90)).Message.Should().ContainAll("Run 7", "'s'", "00:01:30", "force-evicted");
        new RunTimedOutException("s", 8, TimeSpan.FromMinutes(2)).Message.Should().ContainAll("Run 8", "'s'", "00:02:00", "timed out");
    }

    [Fact]
    public void SessionId_TooLong_MessageGivesTheLimitAndTheLength()
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => r.Start(new string('x', 300)))
            .Should().Throw<ArgumentException>().Which.Message.Should().ContainAll("at most 256", "(was 300)");
    }

    [Fact]
    public void WaitForRunEndAsync_TimeoutOutOfRange_MessageGivesTheAllowedRange()
    {
        using var f = new RegistryFixture();

        Sync(() => f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromSeconds(-1)))
            .Should().Throw<ArgumentOutOfRangeException>().Which.Message.Should().Contain("Timeout.InfiniteTimeSpan or between 00:00:00 and 49.17:02:47.294");
    }

    [Fact]
    public void RunHandle_ToString_NamesRunSessionAndStatus()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);

        run.ToString().Should().Be($"Run {run.RunId} (session '{Session}', Running)");
    }

    [Fact]
    public async Task RunAsync_NullTaskAndSupersededAndDisposed_MessagesSayWhatHappened()
    {
        using var f = new RegistryFixture();

        (await FluentActions.Awaiting(() => f.Registry.RunAsync(Session, _ => (Task<int>)null!).Guard()).Should().ThrowAsync<InvalidOperationException>())
            .Which.Message.Should().Contain("null Task");

        var hang = new TaskCompletionSource<int>();
        Task<int> superseded = f.Registry.RunAsync(Session, _ => hang.Task);
        using (f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }))
        {
        }

        (await FluentActions.Awaiting(() => superseded.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.Message.Should().Contain("was superseded by run");

        Task<int> disposed = f.Registry.RunAsync(Session, _ => hang.Task);
        f.Registry.Dispose();
        (await FluentActions.Awaiting(() => disposed.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.Message.Should().Contain("before its provider settled");
    }

    [Fact]
    public void Constructor_OptionsValueNull_ThrowsArgumentExceptionNamingOptions()
    {
        var time = new FakeTimeProvider();

        FluentActions.Invoking(() => new ActiveRunRegistry(new NullValueOptions(), time, Microsoft.Extensions.Logging.Abstractions.NullLogger<ActiveRunRegistry>.Instance))
            .Should().ThrowExactly<ArgumentException>()
            .Which.Should().Match<ArgumentException>(e => e.ParamName == "options" && e.Message.Contains("Value is null", StringComparison.Ordinal));
    }

    [Fact]
    public void Validator_NullOptions_ThrowsArgumentNull()
        => FluentActions.Invoking(() => RunSupervisorOptionsValidator.Instance.Validate(null, null!))
            .Should().ThrowExactly<ArgumentNullException>().WithParameterName("options");

    [Fact]
    public void HeartbeatOwedEventArgs_NullSessionId_ThrowsArgumentNull()
        => FluentActions.Invoking(() => new HeartbeatOwedEventArgs(null!, 1)).Should().ThrowExactly<ArgumentNullException>().WithParameterName("sessionId");

    // ---------------------------------------------------------------------------------------------------------
    // Default abort reasons in the log
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Abort_EveryRoute_LogsItsOwnDefaultReason()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        RunHandle c = f.Registry.Start("c");
        using var cts = new CancellationTokenSource();
        var invoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task call = f.Registry.RunAsync("d", ct =>
        {
            invoked.SetResult();
            return HonourTokenAsync(ct);
        }, cancellationToken: cts.Token);
        await invoked.Task.Guard();

        f.Registry.TryAbort("a").Should().BeTrue();
        b.Abort().Should().BeTrue();
        await cts.CancelAsync();
        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromSeconds(1), new DrainOptions { AbortRemaining = true });
        f.Time.Advance(TimeSpan.FromSeconds(1));
        (await drain.Guard()).Aborted.Should().Equal("c");
        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();

        f.LogsFor("RunAborted", a.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("ActiveRunRegistry.TryAbort was called");
        f.LogsFor("RunAborted", b.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("RunHandle.Abort was called");
        f.LogsFor("RunAborted", c.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("the drain timed out");
        f.LogsWithEvent("RunAborted").Select(r => r.GetStructuredStateValue("AbortReason")).Should().Contain("the caller's cancellation token was cancelled");
    }

    // ---------------------------------------------------------------------------------------------------------
    // Validation order and boundaries
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task RunAsync_InvalidSessionOrDisposedRegistryWithCancelledToken_ThrowsRatherThanReturningCanceled()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        // Bad input is reported as bad input, even when the caller has already given up.
        Sync(() => f.Registry.RunAsync(" ", _ => Task.FromResult(1), cancellationToken: cts.Token)).Should().Throw<ArgumentException>();
        Sync(() => f.Registry.RunAsync(" ", _ => Task.CompletedTask, cancellationToken: cts.Token)).Should().Throw<ArgumentException>();
        f.Registry.Dispose();
        Sync(() => f.Registry.RunAsync(Session, _ => Task.FromResult(1), cancellationToken: cts.Token)).Should().Throw<ObjectDisposedException>();
        Sync(() => f.Registry.RunAsync(Session, _ => Task.CompletedTask, cancellationToken: cts.Token)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task WaitAndDrain_IdleWithCancelledToken_ReturnCanceledTask()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromSeconds(1), cts.Token).IsCanceled.Should().BeTrue("cancellation wins over 'idle, so true'");
        f.Registry.DrainAsync(TimeSpan.FromSeconds(1), cancellationToken: cts.Token).IsCanceled.Should().BeTrue("cancellation wins over 'nothing to drain'");
    }

    [Fact]
    public void WaitForRunEndAsync_LargestTimerTimeout_AcceptedAndOneMillisecondMoreRejected()
    {
        using var f = new RegistryFixture();
        TimeSpan largest = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

        Sync(() => f.Registry.WaitForRunEndAsync(Session, largest)).Should().NotThrow();
        Sync(() => f.Registry.DrainAsync(largest)).Should().NotThrow();
        Sync(() => f.Registry.WaitForRunEndAsync(Session, largest + TimeSpan.FromMilliseconds(1))).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public async Task DrainAsync_ForceEvictOverdueExactlyAtTheDeadline_Evicts()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);

        Task<DrainResult> drain = f.Registry.DrainAsync(RegistryFixture.Timeout, new DrainOptions { ForceEvictOverdue = true });
        f.Time.Advance(RegistryFixture.Timeout);

        DrainResult result = await drain.Guard();
        result.Evicted.Should().Equal(Session);
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public async Task RunAsync_ProviderNeverSettlesOnARunStartedLater_EvictedAgeIsMeasuredFromTheRunsStart()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromHours(3));
        var hang = new TaskCompletionSource<int>();

        Task<int> call = f.Registry.RunAsync(Session, _ => hang.Task);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunEvictedException>())
            .Which.Age.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Disposal: the watchdog's timer and the meter
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void Dispose_WithArmedWatchdog_DisposesItsTimer()
    {
        var time = new TimerTrackingTimeProvider(DateTimeOffset.UnixEpoch);
        var registry = new ActiveRunRegistry(new RunSupervisorOptions(), time);
        registry.Start(Session);
        time.ArmedTimers.Should().Be(1, "the watchdog is armed for the run's deadline");

        registry.Dispose();

        time.ArmedTimers.Should().Be(0, "the registry's disposal stops its timer");
    }

    [Fact]
    public void Dispose_Registry_CompletesItsMeterInstruments()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), new FakeTimeProvider());
        Meter meter = registry.Metrics.RunsStarted.Meter;
        int completed = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
            MeasurementsCompleted = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    Interlocked.Increment(ref completed);
                }
            },
        };
        listener.Start();

        registry.Dispose();

        completed.Should().Be(16, "the registry disposes its meter, which completes its sixteen instruments (the lease ones exist without a store too, so every host exports the same series)");
    }

    // ---------------------------------------------------------------------------------------------------------
    // Nothing keeps a released run alive until its deadline
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void ReleasedRuns_BeforeTheirDeadline_AreNotKeptAliveByTheWatchdogQueue()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), new FakeTimeProvider());

        WeakReference[] released = StartAndRelease(registry, 500);
        UnobservedTaskExceptionGuard.FlushFinalizers();

        released.Count(w => w.IsAlive).Should().Be(0, "a released run leaves the deadline queue at once, not at its deadline");
        GC.KeepAlive(registry);
    }

    // ---------------------------------------------------------------------------------------------------------
    // A time provider whose timers never fire on their own
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void Abort_ZeroGrace_EvictsWithinTheCallWithoutWaitingForATimer()
    {
        var time = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { GracePeriod = TimeSpan.Zero }, time);
        RunHandle run = registry.Start(Session);

        run.Abort().Should().BeTrue();

        registry.IsActive(Session).Should().BeFalse("a zero grace period evicts at once, in the abort itself");
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public async Task DrainAsync_ForceEvictOverdueRunTheWatchdogHasNotSeen_CancelsItsAbortToken()
    {
        var time = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(1) }, time);
        RunHandle run = registry.Start(Session);
        time.Elapse(TimeSpan.FromMinutes(2));
        run.Status.Should().Be(RunStatus.Running, "this clock's timers never fire, so the watchdog has not aborted it");

        DrainResult result = await registry.DrainAsync(TimeSpan.Zero, new DrainOptions { ForceEvictOverdue = true }).Guard();

        result.Evicted.Should().Equal(Session);
        run.AbortToken.IsCancellationRequested.Should().BeTrue("an evicted run's provider is told to stop");
    }

    // ---------------------------------------------------------------------------------------------------------
    // The ledger, the policy and abort-token callbacks
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void Ledger_ForgottenRunSettlesLater_NothingBreaksAndTheNewerEntryStays()
    {
        using var probe = new UnobservedTaskExceptionProbe();
        using var f = WatchdogTestHelpers.CreateFixture(maxAbandonedRuns: 1);
        RunHandle first = f.Registry.Start("a");
        RunHandle second = f.Registry.Start("b");
        var firstProvider = new TaskCompletionSource();
        var secondProvider = new TaskCompletionSource();
        first.Attach(firstProvider.Task);
        second.Attach(secondProvider.Task);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        f.Registry.AbandonedCount.Should().Be(1);
        long kept = f.Registry.GetAbandonedRuns().Single().RunId;
        TaskCompletionSource forgottenProvider = kept == first.RunId ? secondProvider : firstProvider;

        forgottenProvider.SetResult();
        UnobservedTaskExceptionProbe.CollectGarbage();

        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(kept);
        probe.Saw("The LinkedList node does not belong to current LinkedList.").Should().BeFalse();
        f.LogsWithEvent("AbandonedRunSettled").Should().BeEmpty("a forgotten run is not in the ledger any more");
        (kept == first.RunId ? firstProvider : secondProvider).SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public void Policy_Disposed_RaisesNoHeartbeatOwedAfterwards()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        p.Policy.Dispose();
        run.Dispose();

        p.Owed.Should().BeEmpty("a disposed policy no longer listens to the registry");
    }

    [Fact]
    public void Policy_NoHeartbeatOwedSubscriber_RunEndStillResetsTheCountWithoutError()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        RunHandle run = f.Registry.Start(Session);
        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);

        run.Dispose();

        policy.GetDroppedHeartbeats(Session).Should().Be(0);
        f.LogsWithEvent("CallbackFailed").Should().BeEmpty();
    }

    [Fact]
    public void Abort_AbortTokenCallbackThrows_LoggedAndRegistryConsistent()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.AbortToken.Register(() => throw new InvalidOperationException("provider callback failed"));

        f.Registry.TryAbort(Session).Should().BeTrue();

        f.LogsWithEvent("AbortCallbackFailed").Should().ContainSingle().Which.GetStructuredStateValue("RunId").Should().Be(run.RunId.ToString(CultureInfo.InvariantCulture));
        run.Status.Should().Be(RunStatus.Aborting);
        run.Dispose();
        f.Registry.ActiveCount.Should().Be(0);
    }

    // ---------------------------------------------------------------------------------------------------------
    // The deadline heap under load: every run aborted and evicted at exactly its own instant
    // ---------------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Watchdog_ManyRunsWithRandomDeadlinesExtensionsAbortsAndReleases_EachActsAtExactlyItsInstant(int seed)
    {
        var random = new Random(seed);
        var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromSeconds(100), GracePeriod = TimeSpan.FromSeconds(10), MaxRunDuration = TimeSpan.FromSeconds(400) };
        using var f = new RegistryFixture(options);
        var model = new Dictionary<RunHandle, (long AbortAt, long EvictAt)>();
        const int Runs = 300;
        for (int i = 0; i < Runs; i++)
        {
            int timeout = random.Next(1, 200);
            RunHandle run = f.Registry.Start($"s{i}", new RunStartOptions { Timeout = TimeSpan.FromSeconds(timeout) });
            long abortAt = timeout;
            if (random.Next(3) == 0)
            {
                int extension = random.Next(1, 150);
                run.TryExtendDeadline(TimeSpan.FromSeconds(extension)).Should().BeTrue();
                abortAt += extension;
            }

            model[run] = (abortAt, abortAt + 10);
        }

        // Release a large share before anything is due (the heap shrinks), and abort some explicitly now.
        foreach (RunHandle run in model.Keys.Where(_ => random.Next(4) < 3).ToList())
        {
            run.Dispose();
            model.Remove(run);
        }

        foreach (RunHandle run in model.Keys.Where(_ => random.Next(5) == 0).ToList())
        {
            run.Abort().Should().BeTrue();
            model[run] = (0, Math.Min(model[run].EvictAt, 10));
        }

        for (long second = 1; second <= 400; second++)
        {
            f.Time.Advance(TimeSpan.FromSeconds(1));
            foreach ((RunHandle run, (long abortAt, long evictAt)) in model)
            {
                RunStatus expected = second >= evictAt ? RunStatus.Evicted : second >= abortAt ? RunStatus.Aborting : RunStatus.Running;
                if (run.Status != expected)
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"seed {seed}: at {second} s run {run.RunId} (abort {abortAt}, evict {evictAt}) is {run.Status}, expected {expected}"));
                }
            }
        }
    }

    /// <summary>A call whose exception is thrown synchronously (before any task is returned).</summary>
    private static Action Sync(Func<object> call) => () => _ = call();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference[] StartAndRelease(ActiveRunRegistry registry, int count)
    {
        var weak = new WeakReference[count];
        for (int i = 0; i < count; i++)
        {
            RunHandle run = registry.Start($"r{i}");
            run.Dispose();
            weak[i] = new WeakReference(run);
        }

        return weak;
    }

    private sealed class NullValueOptions : IOptions<RunSupervisorOptions>
    {
        public RunSupervisorOptions Value => null!;
    }
}
