using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests;

/// <summary>
/// The watchdog: abort at the deadline (issue item 4), force eviction of a zombie at deadline + grace (item 5),
/// a fixed eviction instant, identity of grace timers across runs of one session (item 6) and the abandoned
/// ledger (item 7). All time comes from the fixture's <see cref="FakeTimeProvider"/>; its <c>Advance</c> moves
/// the clock first and then fires every due timer, so one large step is a timer that fires late.
/// </summary>
public sealed class WatchdogTests
{
    private const string Session = "s1";

    private static TimeSpan Timeout => RegistryFixture.Timeout;

    private static TimeSpan Grace => RegistryFixture.Grace;

    // The isolation tests (run A's grace timer never touches run B) use short runs: timeout 60 s, grace 30 s.
    private static TimeSpan ShortTimeout => TimeSpan.FromSeconds(60);

    private static TimeSpan ShortGrace => TimeSpan.FromSeconds(30);

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

    // ---- The eviction instant is fixed ------------------------------------------------------------------

    [Theory]
    [InlineData("00:00:30")]
    [InlineData("01:00:00")]
    public async Task Advance_OneStepPastDeadlinePlusGrace_AbortsAndEvictsInThatStep(string pastDeadline)
    {
        TimeSpan late = Parse(pastDeadline);
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(Timeout + late);

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Evicted);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
        f.Registry.AbandonedCount.Should().Be(1);

        // Both transitions were logged, in order, by that one late tick.
        var names = f.Logs.Select(r => r.Id.Name).Where(n => n is "RunTimedOut" or "RunForceEvicted").ToList();
        names.Should().Equal("RunTimedOut", "RunForceEvicted");
    }

    [Theory]
    [InlineData("00:00:00.0000001")]
    [InlineData("00:00:10")]
    [InlineData("00:00:29.9999999")]
    public void DeadlineTick_FiresLate_EvictionInstantIsNotPushedBack(string lateBy)
    {
        TimeSpan late = Parse(lateBy);
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);

        // One step: the clock jumps past the deadline and only then does the deadline tick run.
        f.Time.Advance(Timeout + late);

        // Precondition: the tick really was late (its log line carries the age it saw).
        var timedOut = f.LogsWithEvent("RunTimedOut").Should().ContainSingle().Subject;
        timedOut.GetStructuredStateValue("Age").Should().Be(Invariant(Timeout + late));
        timedOut.GetStructuredStateValue("EvictAt").Should().Be(Invariant(t0 + Timeout + Grace));
        run.Status.Should().Be(RunStatus.Aborting);

        f.Time.AdvanceTo(t0 + Timeout + Grace - TestTime.Tick);
        f.Registry.IsActive(Session).Should().BeTrue();

        f.Time.Advance(TestTime.Tick);
        f.Registry.IsActive(Session).Should().BeFalse("eviction stays at deadline + grace, not late tick + grace");
        f.Ended.Should().ContainSingle().Which.Args.Duration.Should().Be(Timeout + Grace);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GracePeriodZero_Deadline_EvictsAtTheDeadline(bool perRunOverride)
    {
        using var f = perRunOverride ? new RegistryFixture() : CreateFixture(grace: TimeSpan.Zero);
        RunHandle run = perRunOverride
            ? f.Registry.Start(Session, new RunStartOptions { GracePeriod = TimeSpan.Zero })
            : f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(Timeout - TestTime.Tick);
        run.Status.Should().Be(RunStatus.Running);

        f.Time.Advance(TestTime.Tick);

        f.Registry.IsActive(Session).Should().BeFalse();
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Duration.Should().Be(Timeout);
        f.LogsWithEvent("RunTimedOut").Should().ContainSingle();
        f.LogsWithEvent("RunForceEvicted").Should().ContainSingle();
        f.Registry.AbandonedCount.Should().Be(1);
    }

    [Theory]
    [InlineData("00:01:00")]
    [InlineData("00:09:50")]
    [InlineData("00:09:59.9999999")]
    public async Task Abort_Explicit_EvictsAtAbortTimePlusGrace(string abortAt)
    {
        TimeSpan at = Parse(abortAt);
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);
        f.Time.AdvanceTo(t0 + at);

        run.Abort().Should().BeTrue();

        // The later cases let the original deadline pass during the grace: it must change nothing.
        f.Time.AdvanceTo(t0 + at + Grace - TestTime.Tick);
        f.Registry.IsActive(Session).Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);

        f.Time.Advance(TestTime.Tick);

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Duration.Should().Be(at + Grace);
        f.LogsWithEvent("RunTimedOut").Should().BeEmpty("an aborted run does not also time out");
    }

    [Fact]
    public async Task Abort_GracePeriodZero_EvictsImmediately()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session, new RunStartOptions { GracePeriod = TimeSpan.Zero });

        run.Abort().Should().BeTrue();

        f.Registry.IsActive(Session).Should().BeFalse("no Advance needed: zero grace evicts within Abort");
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("00:01:00")]
    public void TryExtendDeadline_BeforeDeadline_MovesDeadlineAndEviction(string? step)
    {
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);
        f.Time.AdvanceTo(t0 + TimeSpan.FromMinutes(5), s);

        run.TryExtendDeadline(TimeSpan.FromMinutes(5)).Should().BeTrue();

        // The wake-up armed for the old deadline (10 min) comes and goes without effect.
        f.Time.AdvanceTo(t0 + TimeSpan.FromMinutes(15) - TestTime.Tick, s);
        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();

        f.Time.Advance(TestTime.Tick);
        run.Status.Should().Be(RunStatus.Aborting);
        f.LogsWithEvent("RunTimedOut").Should().ContainSingle()
            .Which.GetStructuredStateValue("EvictAt").Should().Be(Invariant(t0 + TimeSpan.FromMinutes(15) + Grace));

        f.Time.AdvanceTo(t0 + TimeSpan.FromMinutes(15) + Grace - TestTime.Tick, s);
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Time.Advance(TestTime.Tick);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Duration.Should().Be(TimeSpan.FromMinutes(15) + Grace);
    }

    [Fact]
    public void TryExtendDeadline_ToTheCap_RunTimesOutAtCapAndCannotExtendFurther()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);
        DateTimeOffset cap = t0 + f.Options.MaxRunDuration;
        run.TryExtendDeadline(cap - run.Deadline).Should().BeTrue();

        f.Time.AdvanceTo(cap - TestTime.Tick);
        run.TryExtendDeadline(TestTime.Tick).Should().BeFalse("already at the cap");
        run.Status.Should().Be(RunStatus.Running);

        f.Time.Advance(TestTime.Tick);
        run.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(Grace);
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public void Watchdog_RunStartedLaterWithEarlierDeadline_IsAbortedOnItsOwnDeadline()
    {
        // The single watchdog timer is armed for s1 (10 min); s2 starts later with a 2 min timeout and must
        // not wait for s1's wake-up.
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle slow = f.Registry.Start("s1");
        f.Time.Advance(TimeSpan.FromSeconds(1));
        RunHandle quick = f.Registry.Start("s2", new RunStartOptions { Timeout = TimeSpan.FromMinutes(2) });

        f.Time.AdvanceTo(t0 + TimeSpan.FromSeconds(1) + TimeSpan.FromMinutes(2));
        quick.Status.Should().Be(RunStatus.Aborting);
        slow.Status.Should().Be(RunStatus.Running);

        f.Time.AdvanceTo(t0 + TimeSpan.FromSeconds(1) + TimeSpan.FromMinutes(2) + Grace);
        quick.Status.Should().Be(RunStatus.Evicted);
        slow.Status.Should().Be(RunStatus.Running);

        f.Time.AdvanceTo(t0 + Timeout + Grace);
        slow.Status.Should().Be(RunStatus.Evicted);
    }

    // ---- Run A's grace timer never touches run B ------------------------------------------
    // Short runs here: timeout 60 s, grace 30 s, so A's deadline is at 60 s and its eviction instant at 90 s
    // after the start. Times are offsets from A's start; step null = one jump (timers fire late), otherwise
    // the clock moves in steps of at most that size.

    [Theory]
    [InlineData("00:00:45", "00:00:45", null)] // A released before its deadline; A's deadline and eviction instants pass under B
    [InlineData("00:00:45", "00:00:59", "00:00:01")]
    [InlineData("00:01:00", "00:01:00", null)] // A released in the tick its grace began, B started at once
    [InlineData("00:01:00", "00:01:00", "00:00:01")]
    [InlineData("00:01:15", "00:01:20", "00:00:00.5")]
    [InlineData("00:01:29.9999999", "00:01:29.9999999", null)] // one tick before A's eviction
    [InlineData("00:01:29.9999999", "00:01:29.9999999", "00:00:05")]
    public async Task GraceOfReleasedRun_NeverTouchesNextRunOnSession(string releaseAt, string startNextAt, string? step)
    {
        TimeSpan release = Parse(releaseAt);
        TimeSpan startNext = Parse(startNextAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);

        f.Time.AdvanceTo(t0 + release, s);
        a.Dispose();
        f.Time.AdvanceTo(t0 + startNext, s);
        RunHandle b = f.Registry.Start(Session);

        // Past A's eviction instant (t0 + 90 s), up to one tick before B's own deadline.
        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(release < ShortTimeout ? RunEndReason.Completed : RunEndReason.TimedOut);

        // B's own watchdog still works, on B's own instants.
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Aborting);
        f.Time.AdvanceTo(b.Deadline + ShortGrace - TestTime.Tick, s);
        b.IsCurrent.Should().BeTrue();
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Evicted);
        f.EndedFor(b.RunId).Should().ContainSingle().Which.Args.Duration.Should().Be(ShortTimeout + ShortGrace);
        f.EndedFor(a.RunId).Should().ContainSingle();
    }

    [Theory]
    [InlineData("00:00:30", null)] // superseded before A's deadline
    [InlineData("00:01:00", null)] // superseded in the tick A's grace began
    [InlineData("00:01:10", "00:00:01")]
    [InlineData("00:01:29.9999999", null)] // one tick before A's eviction
    [InlineData("00:01:29.9999999", "00:00:02")]
    public async Task GraceOfSupersededRun_NeverTouchesReplacement(string supersedeAt, string? step)
    {
        TimeSpan at = Parse(supersedeAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);
        var providerA = new TaskCompletionSource();
        a.Attach(providerA.Task);

        f.Time.AdvanceTo(t0 + at, s);
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
        a.AbortToken.IsCancellationRequested.Should().BeTrue();
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(a.RunId, "A's provider is still pending");

        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();

        // A's provider finally settles: it leaves the ledger and B is still untouched.
        providerA.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);

        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(ShortGrace);
        b.Status.Should().Be(RunStatus.Evicted);
        f.EndedFor(a.RunId).Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Superseded);
        f.EndedFor(b.RunId).Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
    }

    [Theory]
    [InlineData("00:00:10", "00:00:20", null)]
    [InlineData("00:00:10", "00:00:39.9999999", "00:00:01")] // released one tick before A's eviction (40 s)
    [InlineData("00:00:55", "00:01:24", null)] // A's deadline (60 s) passes during its grace; eviction would be at 85 s
    public async Task GraceOfAbortedRun_NeverTouchesNextRunOnSession(string abortAt, string releaseAt, string? step)
    {
        TimeSpan abort = Parse(abortAt);
        TimeSpan release = Parse(releaseAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);

        f.Time.AdvanceTo(t0 + abort, s);
        a.Abort();
        f.Time.AdvanceTo(t0 + release, s);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);

        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void GraceOfReleasedRun_NextRunDeadlineAtOldEvictionInstant_NextRunIsOnlyAborted()
    {
        // A times out at 60 s (eviction due at 90 s) and is released at 70 s. B starts at 70 s with a 20 s
        // timeout, so B's deadline is A's old eviction instant. At 90 s B must be aborted (its deadline),
        // not evicted (A's grace).
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);
        f.Time.AdvanceTo(t0 + TimeSpan.FromSeconds(70));
        a.Dispose();
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { Timeout = TimeSpan.FromSeconds(20) });
        b.Deadline.Should().Be(t0 + ShortTimeout + ShortGrace);

        f.Time.AdvanceTo(t0 + ShortTimeout + ShortGrace);

        b.Status.Should().Be(RunStatus.Aborting);
        b.IsCurrent.Should().BeTrue();
        f.EndedFor(b.RunId).Should().BeEmpty();

        f.Time.AdvanceTo(b.Deadline + ShortGrace - TestTime.Tick);
        b.IsCurrent.Should().BeTrue();
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Evicted);
    }

    // ---- The abandoned ledger -------------------------------------------------------------

    [Fact]
    public void GetAbandonedRuns_EvictedRunWithPendingTask_ListsIt()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);
        f.Registry.AbandonedCount.Should().Be(0);

        f.Time.Advance(Timeout + Grace);

        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle()
            .Which.Should().Be(new AbandonedRunInfo(Session, run.RunId, t0, t0 + Timeout + Grace));
        f.Registry.IsActive(Session).Should().BeFalse("abandoned is out of the registry");
        run.IsCurrent.Should().BeFalse();

        // It stays listed however long the provider hangs.
        f.Time.Advance(TimeSpan.FromDays(1));
        f.Registry.AbandonedCount.Should().Be(1);
    }

    [Theory]
    [InlineData("complete", "RanToCompletion")]
    [InlineData("fault", "Faulted")]
    [InlineData("cancel", "Canceled")]
    public async Task AbandonedRun_ProviderSettlesLater_LeavesLedgerAndLogsLateness(string outcome, string loggedOutcome)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(Timeout + Grace);
        RunHandle next = f.Registry.Start(Session);
        f.Time.Advance(TimeSpan.FromMinutes(7));
        var failure = new InvalidOperationException("the provider finally gave up");

        switch (outcome)
        {
            case "complete":
                provider.SetResult();
                break;
            case "fault":
                provider.SetException(failure);
                break;
            default:
                provider.SetCanceled();
                break;
        }

        f.Registry.AbandonedCount.Should().Be(0);
        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        var settled = f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle().Subject;
        settled.GetStructuredStateValue("SessionId").Should().Be(Session);
        settled.GetStructuredStateValue("RunId").Should().Be(Invariant(run.RunId));
        settled.GetStructuredStateValue("Outcome").Should().Be(loggedOutcome);
        settled.GetStructuredStateValue("Lateness").Should().Be(Invariant(TimeSpan.FromMinutes(7)));
        if (outcome == "fault")
        {
            CarriesException(settled.Exception, failure).Should().BeTrue("the late fault is logged with the record");
        }

        // Settling late ends nothing a second time and does not touch the session's new run.
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.EndedFor(run.RunId).Should().ContainSingle();
        next.IsCurrent.Should().BeTrue();
        next.Status.Should().Be(RunStatus.Running);
    }

    [Theory]
    [InlineData("evicted")]
    [InlineData("superseded")]
    [InlineData("forgotten")]
    public void AbandonedRun_ProviderFaultsLater_ExceptionIsObserved(string howAbandoned)
    {
        using var probe = new UnobservedTaskExceptionProbe();
        using var f = CreateFixture(maxAbandonedRuns: 1);
        string marker = $"abandoned provider failure {Guid.NewGuid()}";
        string control = $"control failure {Guid.NewGuid()}";

        AbandonThenFault(f, howAbandoned, marker);
        UnobservedTaskExceptionProbe.DropUnobservedFault(control);
        UnobservedTaskExceptionProbe.CollectGarbage();

        probe.Saw(control).Should().BeTrue("the probe must see an unobserved fault, or this test proves nothing");
        probe.Saw(marker).Should().BeFalse("the registry observes an abandoned provider's exception");
    }

    [Fact]
    public void MaxAbandonedRuns_LedgerFull_ForgetsOldestWithWarning()
    {
        using var f = CreateFixture(maxAbandonedRuns: 2);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        var runs = new List<RunHandle>();
        var providers = new List<TaskCompletionSource>();
        for (int i = 0; i < 3; i++)
        {
            // Started a second apart, so they are evicted (and enter the ledger) in this order.
            var provider = new TaskCompletionSource();
            RunHandle run = f.Registry.Start($"s{i}");
            run.Attach(provider.Task);
            runs.Add(run);
            providers.Add(provider);
            f.Time.Advance(TimeSpan.FromSeconds(1));
        }

        f.Time.AdvanceTo(t0 + Timeout + Grace + TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1));

        runs.Should().OnlyContain(r => r.Status == RunStatus.Evicted);
        f.Registry.AbandonedCount.Should().Be(2);
        f.Registry.GetAbandonedRuns().Select(r => r.RunId).Should().Equal(runs[1].RunId, runs[2].RunId);
        var forgotten = f.LogsWithEvent("AbandonedRunForgotten").Should().ContainSingle().Subject;
        forgotten.Level.Should().Be(LogLevel.Warning);
        forgotten.GetStructuredStateValue("RunId").Should().Be(Invariant(runs[0].RunId));
        forgotten.GetStructuredStateValue("SessionId").Should().Be("s0");
        forgotten.GetStructuredStateValue("MaxAbandonedRuns").Should().Be("2");

        // The forgotten run settling later changes nothing; a listed one settling leaves the ledger.
        providers[0].SetResult();
        f.Registry.AbandonedCount.Should().Be(2);
        f.LogsFor("AbandonedRunSettled", runs[0].RunId).Should().BeEmpty();
        providers[1].SetResult();
        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(runs[2].RunId);
    }

    [Fact]
    public void AbandonedRun_WithoutAttachedTask_StaysUntilHandleDisposed()
    {
        // Documented design: with no task attached, the owner's late release is the only sign the run settled.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(Timeout + Grace);
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(run.RunId);

        f.Time.Advance(TimeSpan.FromDays(1));
        f.Registry.AbandonedCount.Should().Be(1);

        run.Dispose();

        f.Registry.AbandonedCount.Should().Be(0);
        var settled = f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle().Subject;
        settled.GetStructuredStateValue("Outcome").Should().Be("released");
        settled.GetStructuredStateValue("Lateness").Should().Be(Invariant(TimeSpan.FromDays(1)));
        f.LogsFor("StaleReleaseIgnored", run.RunId).Should().ContainSingle().Which.Level.Should().Be(LogLevel.Debug);

        run.Dispose();
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle("a second release settles nothing");
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void AbandonedRun_WithPendingAttachedTask_LateDisposeDoesNotClearLedger()
    {
        // With a task attached, the task is the evidence: the owner's release alone does not settle it.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(Timeout + Grace);

        run.Dispose();
        f.Registry.AbandonedCount.Should().Be(1);

        provider.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle()
            .Which.GetStructuredStateValue("Outcome").Should().Be("RanToCompletion");
    }

    /// <summary>
    /// Gets a run abandoned with a pending provider, then faults the provider. Not inlined and returning nothing,
    /// so no reference to the task or the handle survives in the caller's frame when it collects garbage.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AbandonThenFault(RegistryFixture f, string howAbandoned, string message)
    {
        var provider = new TaskCompletionSource();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(provider.Task);
        switch (howAbandoned)
        {
            case "evicted":
                f.Time.Advance(Timeout + Grace);
                break;
            case "superseded":
                f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).Dispose();
                break;
            case "forgotten":
                // The fixture's ledger holds one run: a second eviction pushes this one out.
                f.Time.Advance(Timeout + Grace);
                f.Registry.Start("other").Attach(new TaskCompletionSource().Task);
                f.Time.Advance(Timeout + Grace);
                f.LogsFor("AbandonedRunForgotten", run.RunId).Should().ContainSingle();
                break;
        }

        run.IsCurrent.Should().BeFalse();
        provider.SetException(new InvalidOperationException(message));
    }

    private static TimeSpan Parse(string value) => TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
}
