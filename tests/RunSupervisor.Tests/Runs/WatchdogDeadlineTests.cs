using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// The watchdog at a run's deadline: the run is aborted (token cancelled, status Aborting, TimedOut logged), and a
/// zombie that ignores the abort is force-evicted at deadline + grace. All time comes from the fixture's
/// <see cref="FakeTimeProvider"/>; its <c>Advance</c> moves the clock first and then fires every due timer, so one
/// large step is a timer that fires late.
/// </summary>
public sealed class WatchdogDeadlineTests
{
    private const string Session = "s1";

    private static TimeSpan Timeout => RegistryFixture.Timeout;

    private static TimeSpan Grace => RegistryFixture.Grace;

    // ---- The deadline ---------------------------------------------------------------------

    [Fact]
    public void Deadline_Reached_CancelsAbortTokenSetsAbortingAndLogsTimedOut()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);

        f.Time.Advance(Timeout - TestTime.Tick);
        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.LogsWithEvent("RunTimedOut").Should().BeEmpty();

        f.Time.Advance(TestTime.Tick);

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
        run.IsCurrent.Should().BeTrue("the run keeps its session during the grace period");
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.Status.Should().Be(RunStatus.Aborting);
        run.Completion.IsCompleted.Should().BeFalse();
        f.Ended.Should().BeEmpty();

        var timedOut = f.LogsWithEvent("RunTimedOut").Should().ContainSingle().Subject;
        timedOut.Level.Should().Be(LogLevel.Warning);
        timedOut.GetStructuredStateValue("SessionId").Should().Be(Session);
        timedOut.GetStructuredStateValue("RunId").Should().Be(Invariant(run.RunId));
        timedOut.GetStructuredStateValue("Age").Should().Be(Invariant(Timeout));
        timedOut.GetStructuredStateValue("EvictAt").Should().Be(Invariant(t0 + Timeout + Grace));
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("00:00:15")]
    [InlineData("00:00:29.9999999")]
    public async Task Dispose_WithinGraceAfterTimeout_EndsTimedOut(string afterDeadline)
    {
        TimeSpan offset = Parse(afterDeadline);
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(Timeout);
        f.Time.Advance(offset);

        run.Dispose();

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.TimedOut);
        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.Reason.Should().Be(RunEndReason.TimedOut);
        ended.Args.Duration.Should().Be(Timeout + offset);

        // Its eviction instant passing later does nothing more.
        f.Time.Advance(Grace);
        f.Ended.Should().ContainSingle();
        f.LogsWithEvent("RunForceEvicted").Should().BeEmpty();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Deadline_ProviderHonoursAbortToken_RunEndsTimedOutWithoutTheTickWaitingForTheCallback(bool faultInsteadOfCancel)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.AbortToken.Register(() =>
        {
            if (faultInsteadOfCancel)
            {
                provider.TrySetException(new HttpRequestException("connection reset by the abort"));
            }
            else
            {
                provider.TrySetCanceled(run.AbortToken);
            }
        });
        run.Attach(provider.Task);

        f.Time.Advance(Timeout);

        // The token is cancelled at once; its callback runs on the thread pool, never on the watchdog's thread.
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.TimedOut);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Duration.Should().Be(Timeout);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task Abort_ReleasedWithinGraceAfterDeadlinePassed_EndsAbortedNotTimedOut()
    {
        // Aborted 10 s before the deadline; the deadline passes during its grace. It was aborted, not timed out.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(Timeout - TimeSpan.FromSeconds(10));
        run.Abort();
        f.Time.Advance(TimeSpan.FromSeconds(15));

        run.Status.Should().Be(RunStatus.Aborting);
        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.LogsWithEvent("RunTimedOut").Should().BeEmpty();
    }

    // ---- The zombie -----------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Zombie_NeverSettlesNorDisposed_IsForceEvictedAtTimeoutPlusGrace(bool attachPendingTask)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        if (attachPendingTask)
        {
            run.Attach(new TaskCompletionSource().Task);
        }

        Task<bool> waiter = f.Registry.WaitForRunEndAsync(Session, System.Threading.Timeout.InfiniteTimeSpan);
        bool? activeDuringEvent = null;
        bool? completionDoneDuringEvent = null;
        RunStatus? statusDuringEvent = null;
        f.Registry.RunEnded += (_, _) =>
        {
            activeDuringEvent = f.Registry.IsActive(Session);
            completionDoneDuringEvent = run.Completion.IsCompleted;
            statusDuringEvent = run.Status;
        };

        f.Time.Advance(Timeout + Grace - TestTime.Tick);
        f.Registry.IsActive(Session).Should().BeTrue("one tick before the eviction instant");
        run.Status.Should().Be(RunStatus.Aborting);
        f.Ended.Should().BeEmpty();

        f.Time.Advance(TestTime.Tick);

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        run.IsCurrent.Should().BeFalse();
        run.Status.Should().Be(RunStatus.Evicted);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await waiter.WaitAsync(TestTime.HangGuard)).Should().BeTrue("eviction wakes the session's waiters");
        (await f.Registry.WaitForRunEndAsync(Session, TimeSpan.Zero)).Should().BeTrue("the session is idle");

        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.RunId.Should().Be(run.RunId);
        ended.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Args.Duration.Should().Be(Timeout + Grace);
        ended.StillRegistered.Should().BeFalse();
        activeDuringEvent.Should().BeFalse("RunEnded fires after the entry is gone");
        statusDuringEvent.Should().Be(RunStatus.Evicted);
        completionDoneDuringEvent.Should().BeFalse("Completion completes after RunEnded");
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);

        var evicted = f.LogsWithEvent("RunForceEvicted").Should().ContainSingle().Subject;
        evicted.Level.Should().Be(LogLevel.Warning);
        evicted.GetStructuredStateValue("SessionId").Should().Be(Session);
        evicted.GetStructuredStateValue("RunId").Should().Be(Invariant(run.RunId));
        evicted.GetStructuredStateValue("Age").Should().Be(Invariant(Timeout + Grace));
        evicted.Message.Should().Contain(Session).And.Contain(Invariant(run.RunId));

        // Nothing fires again for it.
        f.Time.Advance(TimeSpan.FromHours(2));
        f.Ended.Should().ContainSingle();
        f.LogsWithEvent("RunForceEvicted").Should().ContainSingle();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Zombie_LateDisposeAfterEviction_IsNoOpAndNewStartSucceeds(bool newRunStartsBeforeLateDispose)
    {
        using var f = new RegistryFixture();
        RunHandle zombie = f.Registry.Start(Session);
        f.Time.Advance(Timeout + Grace);
        zombie.Status.Should().Be(RunStatus.Evicted);

        RunHandle? next = null;
        if (newRunStartsBeforeLateDispose)
        {
            next = f.Registry.Start(Session);
        }

        // The zombie's finally finally runs (twice, sync and async), long after its eviction.
        zombie.Dispose();
        await zombie.DisposeAsync();
        next ??= f.Registry.Start(Session);

        next.RunId.Should().BeGreaterThan(zombie.RunId);
        next.IsCurrent.Should().BeTrue();
        next.Status.Should().Be(RunStatus.Running);
        next.AbortToken.IsCancellationRequested.Should().BeFalse();
        zombie.IsCurrent.Should().BeFalse();
        zombie.Status.Should().Be(RunStatus.Evicted);
        (await zombie.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(zombie.RunId);
        f.Registry.ActiveCount.Should().Be(1);
    }

    private static TimeSpan Parse(string value) => TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void ReleasedRuns_BeforeTheirDeadline_AreNotKeptAliveByTheWatchdogQueue()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), new FakeTimeProvider());

        WeakReference[] released = StartAndRelease(registry, 500);
        UnobservedTaskExceptionGuard.FlushFinalizers();

        released.Count(w => w.IsAlive).Should().Be(0, "a released run leaves the deadline queue at once, not at its deadline");
        GC.KeepAlive(registry);
    }

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
}
