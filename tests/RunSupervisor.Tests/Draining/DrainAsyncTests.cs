using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Draining;

/// <summary>
/// <see cref="ActiveRunRegistry.DrainAsync(TimeSpan, DrainOptions?, CancellationToken)"/>: waits for every run to end,
/// then aborts what remains and evicts what is overdue, as <see cref="DrainOptions"/> says, and reports each session once.
/// </summary>
public sealed class DrainAsyncTests
{
    private const string Session = "s1";

    [Fact]
    public async Task DrainAsync_NoActiveRuns_CompletesAtOnceWithEmptyLists()
    {
        using var f = new RegistryFixture();

        // Infinite timeout: with nothing to wait for, the drain must not wait at all.
        Task<DrainResult> drain = f.Registry.DrainAsync(Timeout.InfiniteTimeSpan);

        drain.IsCompletedSuccessfully.Should().BeTrue();
        DrainResult result = await drain;
        result.IsComplete.Should().BeTrue();
        result.Drained.Should().BeEmpty();
        result.Aborted.Should().BeEmpty();
        result.Evicted.Should().BeEmpty();
        result.StillRunning.Should().BeEmpty();
        f.LogsWithEvent("DrainCompleted").Should().ContainSingle();
        f.LogsWithEvent("DrainTimedOut").Should().BeEmpty();
    }

    [Fact]
    public async Task DrainAsync_AllRunsEndWithinTimeout_ReturnsCompleteResultListingThemAsDrained()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(5));
        a.Dispose();
        f.Time.Advance(TimeSpan.FromMinutes(1));

        // One run is still active, so the drain is not done.
        drain.IsCompleted.Should().BeFalse();

        b.Dispose();
        DrainResult result = await drain.Guard();

        result.IsComplete.Should().BeTrue();
        result.Drained.Should().BeEquivalentTo("a", "b");
        result.Aborted.Should().BeEmpty();
        result.Evicted.Should().BeEmpty();
        result.StillRunning.Should().BeEmpty();
        f.LogsWithEvent("DrainCompleted").Should().ContainSingle().Which.Level.Should().Be(LogLevel.Information);
        f.LogsWithEvent("DrainTimedOut").Should().BeEmpty();
    }

    [Fact]
    public async Task DrainAsync_RunForceEvictedByWatchdogDuringDrain_CompletesAtTheEvictionWithTheRunListedAsEvicted()
    {
        using var f = new RegistryFixture();
        RunHandle zombie = f.Registry.Start(Session);
        zombie.Attach(new TaskCompletionSource().Task);

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromHours(1));
        f.Time.Advance(RegistryFixture.Timeout);
        drain.IsCompleted.Should().BeFalse("the timed-out run is still registered during its grace period");

        // The eviction is a run end like any other: it wakes the drain, long before the drain's own timeout.
        f.Time.Advance(RegistryFixture.Grace);
        DrainResult result = await drain.Guard();

        // Woken by the eviction, but the drain reports what it saw: the run did not drain, it was evicted.
        result.IsComplete.Should().BeFalse();
        result.Drained.Should().BeEmpty();
        result.Evicted.Should().Equal(Session);
        result.Runs.Should().ContainSingle().Which.Should().Match<DrainedRun>(r =>
            r.RunId == zombie.RunId && r.Reason == RunEndReason.ForceEvicted && r.Outcome == DrainOutcome.Evicted && r.Detail!.StartsWith("evicted: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DrainAsync_TimeoutWithDefaultOptions_ReportsStillRunningAndAbortsNothing()
    {
        using var f = new RegistryFixture();
        using RunHandle a = f.Registry.Start("a");
        using RunHandle b = f.Registry.Start("b");
        RunHandle done = f.Registry.Start("done");
        TimeSpan timeout = TimeSpan.FromMinutes(2);

        Task<DrainResult> drain = f.Registry.DrainAsync(timeout);
        done.Dispose();
        f.Time.Advance(timeout - TestTime.Tick);
        drain.IsCompleted.Should().BeFalse();
        f.Time.Advance(TestTime.Tick);
        DrainResult result = await drain.Guard();

        result.IsComplete.Should().BeFalse();
        result.Drained.Should().Equal("done");
        result.StillRunning.Should().BeEquivalentTo("a", "b");
        result.Aborted.Should().BeEmpty();
        result.Evicted.Should().BeEmpty();
        foreach (RunHandle run in new[] { a, b })
        {
            run.Status.Should().Be(RunStatus.Running, "without options the drain leaves remaining runs alone");
            run.AbortToken.IsCancellationRequested.Should().BeFalse();
            run.IsCurrent.Should().BeTrue();
        }

        f.LogsWithEvent("RunAborted").Should().BeEmpty();
        f.LogsWithEvent("DrainTimedOut").Should().ContainSingle().Which.Level.Should().Be(LogLevel.Warning);
        f.LogsWithEvent("DrainCompleted").Should().BeEmpty();
    }

    [Fact]
    public async Task DrainAsync_TimeoutWithAbortRemaining_AbortsRemainingRunsAndListsThemAsAborted()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        TimeSpan timeout = TimeSpan.FromMinutes(2);

        Task<DrainResult> drain = f.Registry.DrainAsync(timeout, new DrainOptions { AbortRemaining = true });
        f.Time.Advance(timeout);
        DrainResult result = await drain.Guard();

        result.Aborted.Should().BeEquivalentTo("a", "b");
        result.Drained.Should().BeEmpty();
        result.Evicted.Should().BeEmpty();
        result.StillRunning.Should().BeEmpty();
        foreach (RunHandle run in new[] { a, b })
        {
            run.AbortToken.IsCancellationRequested.Should().BeTrue();
            run.Status.Should().Be(RunStatus.Aborting, "an aborted run keeps its session for its grace period");
        }

        f.LogsWithEvent("DrainTimedOut").Should().ContainSingle().Which.Level.Should().Be(LogLevel.Warning);

        // The drain's abort started the grace period: the watchdog evicts the runs one grace period later.
        f.Time.Advance(RegistryFixture.Grace - TestTime.Tick);
        f.Registry.ActiveCount.Should().Be(2);
        f.Time.Advance(TestTime.Tick);
        f.Registry.ActiveCount.Should().Be(0);
        (await a.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
        (await b.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
    }

    [Fact]
    public async Task DrainAsync_TimeoutWithForceEvictOverdue_EvictsOnlyRunsPastTheirDeadline()
    {
        using var f = new RegistryFixture();

        // Deadline after 1 minute, but a long grace period so the watchdog itself would not evict it yet.
        RunHandle overdue = f.Registry.Start("overdue", new RunStartOptions { Timeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.FromHours(1) });
        using RunHandle fresh = f.Registry.Start("fresh");

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(2), new DrainOptions { ForceEvictOverdue = true });
        f.Time.Advance(TimeSpan.FromMinutes(1));
        overdue.Status.Should().Be(RunStatus.Aborting, "the watchdog aborted it at its deadline");
        f.Time.Advance(TimeSpan.FromMinutes(1));
        DrainResult result = await drain.Guard();

        result.Evicted.Should().Equal("overdue");
        result.StillRunning.Should().Equal("fresh");
        result.Aborted.Should().BeEmpty();
        result.Drained.Should().BeEmpty();

        overdue.Status.Should().Be(RunStatus.Evicted);
        f.Registry.IsActive("overdue").Should().BeFalse();
        (await overdue.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Should().Match<RunEndedEventArgs>(
            e => e.SessionId == "overdue" && e.Reason == RunEndReason.ForceEvicted);

        fresh.Status.Should().Be(RunStatus.Running, "a run within its deadline is not evicted");
        fresh.AbortToken.IsCancellationRequested.Should().BeFalse();
        fresh.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task DrainAsync_TimeoutWithBothOptions_ListsEachSessionInExactlyOneList()
    {
        using var f = new RegistryFixture();
        RunHandle done = f.Registry.Start("done");
        RunHandle overdue = f.Registry.Start("overdue", new RunStartOptions { Timeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.FromHours(1) });
        RunHandle fresh = f.Registry.Start("fresh");

        // Already aborting (explicitly, long grace) but not past its deadline: the drain can neither abort it
        // again nor treat it as overdue, so it is left alone.
        using RunHandle aborting = f.Registry.Start("aborting", new RunStartOptions { GracePeriod = TimeSpan.FromHours(1) });
        aborting.Abort().Should().BeTrue();

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(2), new DrainOptions { AbortRemaining = true, ForceEvictOverdue = true });
        done.Dispose();
        f.Time.Advance(TimeSpan.FromMinutes(1));
        f.Time.Advance(TimeSpan.FromMinutes(1));
        DrainResult result = await drain.Guard();

        result.Drained.Should().Equal("done");
        result.Evicted.Should().Equal(new[] { "overdue" }, "an overdue run is evicted, not merely aborted");
        result.Aborted.Should().Equal("fresh");
        result.StillRunning.Should().Equal("aborting");
        result.Drained.Concat(result.Aborted).Concat(result.Evicted).Concat(result.StillRunning)
            .Should().OnlyHaveUniqueItems().And.BeEquivalentTo("done", "overdue", "fresh", "aborting");

        (await overdue.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
        fresh.Status.Should().Be(RunStatus.Aborting);
        fresh.AbortToken.IsCancellationRequested.Should().BeTrue();
        aborting.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public async Task DrainAsync_AbortRemainingWithZeroGracePeriod_ListsRunThatWasEvictedAsEvicted()
    {
        // With a zero grace period an abort evicts at once, so the drain's abort ends the run then and there.
        // DrainResult.Aborted is documented as "still active when the drain returned" and Evicted as
        // "force-evicted by the drain", so the run belongs in Evicted.
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = TimeSpan.Zero });
        RunHandle run = f.Registry.Start(Session);

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { AbortRemaining = true });
        f.Time.Advance(TimeSpan.FromMinutes(1));
        DrainResult result = await drain.Guard();

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
        result.Aborted.Should().BeEmpty("the run is no longer active, as Aborted promises");
        result.Evicted.Should().Equal(Session);
    }

    [Fact]
    public async Task DrainAsync_CancelledDuringWait_ThrowsOperationCanceledAndAbortsNothing()
    {
        using var f = new RegistryFixture();
        using RunHandle a = f.Registry.Start("a");
        using RunHandle b = f.Registry.Start("b");
        using var cts = new CancellationTokenSource();
        TimeSpan timeout = TimeSpan.FromMinutes(1);

        Task<DrainResult> drain = f.Registry.DrainAsync(timeout, new DrainOptions { AbortRemaining = true, ForceEvictOverdue = true }, cts.Token);
        cts.Cancel();

        (await FluentActions.Awaiting(() => drain.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token);

        // Past the drain's timeout (but before any run's deadline): a cancelled drain must not come back and act.
        f.Time.Advance(timeout);
        foreach (RunHandle run in new[] { a, b })
        {
            run.Status.Should().Be(RunStatus.Running);
            run.AbortToken.IsCancellationRequested.Should().BeFalse();
            run.IsCurrent.Should().BeTrue();
        }

        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunAborted").Should().BeEmpty();
        f.LogsWithEvent("DrainTimedOut").Should().BeEmpty();
        f.LogsWithEvent("DrainCompleted").Should().BeEmpty();
    }

    [Fact]
    public async Task DrainAsync_TokenAlreadyCancelled_ReturnsCanceledTaskAndAbortsNothing()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true }, cts.Token);

        drain.IsCanceled.Should().BeTrue();
        await FluentActions.Awaiting(() => drain).Should().ThrowAsync<OperationCanceledException>();
        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task DrainAsync_RunStartedAfterDrainBegan_IsNotWaitedForOrListed()
    {
        using var f = new RegistryFixture();
        RunHandle early = f.Registry.Start("early");

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(5), new DrainOptions { AbortRemaining = true });
        using RunHandle late = f.Registry.Start("late");
        early.Dispose();

        // No Advance: the drain completes from the early run's end although "late" is still active.
        DrainResult result = await drain.Guard();

        result.IsComplete.Should().BeTrue();
        result.Drained.Should().Equal("early");
        result.Aborted.Should().BeEmpty();
        result.Evicted.Should().BeEmpty();
        result.StillRunning.Should().BeEmpty();
        late.IsCurrent.Should().BeTrue();
        late.Status.Should().Be(RunStatus.Running);
        late.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task DrainAsync_NegativeTimeout_ThrowsArgumentOutOfRange()
    {
        using var f = new RegistryFixture();

        await FluentActions.Awaiting(() => f.Registry.DrainAsync(TimeSpan.FromSeconds(-1)))
            .Should().ThrowExactlyAsync<ArgumentOutOfRangeException>().WithParameterName("timeout");
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

    [Fact]
    public async Task DrainAsync_CallerContextBlocked_CompletesWithoutIt()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var blocked = new BlockedThreadSynchronizationContext();

        // Called from a UI thread that then blocks on the drain: the drain must not need that thread to finish.
        Task<DrainResult> drain = blocked.Run(() => f.Registry.DrainAsync(Timeout.InfiniteTimeSpan));
        run.Dispose();

        // A drain that resumed on its caller's context would never finish: the guard turns that hang into a failure.
        DrainResult result = await drain.Guard();
        result.Drained.Should().Equal(Session);
        blocked.Posted.Should().Be(0);
    }

    [Fact]
    public async Task DrainAsync_TheWatchdogEvictsTheOnlyRunLongBeforeTheTimeout_LogsCompletedNotTimedOut()
    {
        // Event 12 is for a timeout that elapsed with runs left; here no run was left and the hour never passed.
        using var f = new RegistryFixture();
        RunHandle hung = f.Registry.Start("s1");
        hung.Attach(new TaskCompletionSource().Task);

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromHours(1));
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        DrainResult result = await drain.Guard();

        result.Evicted.Should().Equal("s1");
        result.IsComplete.Should().BeFalse("a force-evicted run did not drain");
        f.LogsWithEvent("DrainTimedOut").Should().BeEmpty();
        f.LogsWithEvent("DrainCompleted").Should().ContainSingle().Which.Message.Should().Be("Drain completed: 1 run(s) ended within the timeout.");
    }
}
