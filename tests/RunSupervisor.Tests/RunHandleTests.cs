using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests;

/// <summary>
/// The run handle on its own: release (sync and async, idempotent, stale), abort, attaching a provider task,
/// deadline extension, identity (<see cref="RunHandle.IsCurrent"/>), status, abort token and completion.
/// The fixture's registry runs with a 10 min timeout, 30 s grace and 1 h cap.
/// </summary>
public sealed class RunHandleTests
{
    private const string Session = "s1";

    // ---- Releasing ------------------------------------------------------------------------

    [Fact]
    public async Task Dispose_ActiveRun_ReleasesSessionAndCompletesWithCompleted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        Task<bool> waiter = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);

        // What a RunEnded subscriber sees: the entry already gone, Completion not yet completed.
        bool? activeDuringEvent = null;
        bool? currentDuringEvent = null;
        bool? completionDoneDuringEvent = null;
        f.Registry.RunEnded += (_, _) =>
        {
            activeDuringEvent = f.Registry.IsActive(Session);
            currentDuringEvent = run.IsCurrent;
            completionDoneDuringEvent = run.Completion.IsCompleted;
        };

        run.Dispose();

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        run.Status.Should().Be(RunStatus.Ended);
        run.IsCurrent.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        (await waiter.WaitAsync(TestTime.HangGuard)).Should().BeTrue();

        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.RunId.Should().Be(run.RunId);
        ended.Args.SessionId.Should().Be(Session);
        ended.Args.Reason.Should().Be(RunEndReason.Completed);
        ended.StillRegistered.Should().BeFalse();
        activeDuringEvent.Should().BeFalse();
        currentDuringEvent.Should().BeFalse();
        completionDoneDuringEvent.Should().BeFalse("RunEnded is raised before Completion completes");
    }

    [Fact]
    public async Task DisposeAsync_ActiveRun_ReleasesSessionWithCompleted()
    {
        using var f = new RegistryFixture();
        RunHandle run;
        await using (run = f.Registry.Start(Session))
        {
            f.Registry.IsActive(Session).Should().BeTrue();
        }

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Dispose_Twice_SecondReleaseIsNoOp(bool firstAsync, bool secondAsync)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        RunHandle other = f.Registry.Start("s2");

        await Release(run, firstAsync);
        await Release(run, secondAsync);

        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(run.RunId);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        run.Status.Should().Be(RunStatus.Ended);
        f.Registry.ActiveCount.Should().Be(1, "the other session's run is untouched by the repeated release");
        other.IsCurrent.Should().BeTrue();
        f.Logs.Should().NotContain(r => r.Level >= LogLevel.Warning);
    }

    // ---- Stale handle ---------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Dispose_StaleHandleAfterNewRunStarted_NewRunStaysCurrentAndDebugLogged(bool useDisposeAsync)
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);
        int logsBefore = f.Logs.Count;

        // The late finally of run A: it names A, so it must not remove B.
        await Release(a, useDisposeAsync);

        f.Registry.IsActive(Session).Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(b.RunId);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.Completion.IsCompleted.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);

        // One record for the stale release, at Debug; nothing the stale release logs is above Debug.
        var newRecords = f.Logs.Skip(logsBefore).ToList();
        newRecords.Should().OnlyContain(r => r.Level == LogLevel.Debug);
        var stale = newRecords.Should().ContainSingle(r => r.Id.Name == "StaleReleaseIgnored").Subject;
        stale.GetStructuredStateValue("RunId").Should().Be(Invariant(a.RunId));
        stale.GetStructuredStateValue("SessionId").Should().Be(Session);
    }

    [Fact]
    public async Task Dispose_SupersededHandle_DoesNotTouchReplacement()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.Dispose();

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        f.LogsFor("StaleReleaseIgnored", a.RunId).Should().ContainSingle().Which.Level.Should().Be(LogLevel.Debug);
    }

    // ---- Abort ------------------------------------------------------------------------------------------

    [Fact]
    public void Abort_RunningRun_CancelsTokenAndStartsAborting()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort("user pressed stop").Should().BeTrue();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
        run.IsCurrent.Should().BeTrue("an aborted run keeps its session until it settles or its grace elapses");
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.Status.Should().Be(RunStatus.Aborting);
        run.Completion.IsCompleted.Should().BeFalse();
        f.Ended.Should().BeEmpty();
        var logged = f.LogsFor("RunAborted", run.RunId).Should().ContainSingle().Subject;
        logged.Level.Should().Be(LogLevel.Information);
        logged.GetStructuredStateValue("AbortReason").Should().Be("user pressed stop");
    }

    [Fact]
    public void Abort_Twice_SecondReturnsFalse()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort().Should().BeTrue();
        run.Abort().Should().BeFalse();

        f.LogsFor("RunAborted", run.RunId).Should().ContainSingle();
    }

    [Fact]
    public async Task Abort_ThenDispose_EndsAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Abort();
        f.Time.Advance(TimeSpan.FromSeconds(5));

        run.Dispose();

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task Abort_AfterTimeout_ReturnsFalseAndReasonStaysTimedOut()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(RegistryFixture.Timeout);

        run.Abort().Should().BeFalse("the watchdog already aborted it");
        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.TimedOut);
        f.LogsFor("RunAborted", run.RunId).Should().BeEmpty();
    }

    [Fact]
    public async Task Abort_AfterRelease_ReturnsFalseAndLeavesTokenAlone()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Dispose();

        run.Abort().Should().BeFalse();

        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Abort_StaleHandle_DoesNotTouchNewRun(bool superseded)
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        RunHandle b;
        if (superseded)
        {
            b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        }
        else
        {
            a.Dispose();
            b = f.Registry.Start(Session);
        }

        a.Abort().Should().BeFalse();

        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
        f.LogsFor("RunAborted", b.RunId).Should().BeEmpty();
    }

    // ---- Attach -----------------------------------------------------------------------------------------

    [Fact]
    public void Attach_Null_ThrowsArgumentNullExceptionAndRunIsUnaffected()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        Action act = () => run.Attach(null!);

        act.Should().Throw<ArgumentNullException>().WithParameterName("providerTask");
        run.IsCurrent.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Running);

        // Nothing was attached: a real task can still be attached afterwards.
        run.Invoking(r => r.Attach(new TaskCompletionSource().Task)).Should().NotThrow();
    }

    [Fact]
    public async Task Attach_Twice_ThrowsInvalidOperationExceptionAndFirstTaskStillGoverns()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var first = new TaskCompletionSource();
        var second = new TaskCompletionSource();
        run.Attach(first.Task);

        Action act = () => run.Attach(second.Task);

        act.Should().Throw<InvalidOperationException>().WithMessage($"*{run.RunId}*");
        second.SetException(new InvalidOperationException("the rejected task"));
        run.IsCurrent.Should().BeTrue("the rejected task is not watched");

        // Nobody watches the rejected task, so observe its fault here: the suite-wide UnobservedTaskExceptionGuard
        // fails the run on any unobserved task exception.
        second.Task.Exception.Should().NotBeNull();

        first.SetResult();
        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task Attach_AlreadyCompletedTask_EndsRunCompletedAtOnce()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.CompletedTask);

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task Attach_AlreadyFaultedTask_EndsRunFaulted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromException(new InvalidOperationException("provider broke")));

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Faulted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task Attach_AlreadyCanceledTask_EndsRunAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromCanceled(new CancellationToken(canceled: true)));

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    [Theory]
    [InlineData("complete", RunEndReason.Completed)]
    [InlineData("fault", RunEndReason.Faulted)]
    [InlineData("cancel", RunEndReason.Aborted)]
    public async Task Attach_PendingTaskSettlesLater_EndsRunWithMatchingReason(string outcome, RunEndReason expected)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(TimeSpan.FromMinutes(1));
        f.Registry.IsActive(Session).Should().BeTrue("the provider has not settled yet");

        Settle(provider, outcome);

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(expected);
        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.Reason.Should().Be(expected);
        ended.Args.Duration.Should().Be(TimeSpan.FromMinutes(1));
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Theory]
    [InlineData("complete")]
    [InlineData("fault")]
    [InlineData("cancel")]
    public async Task Attach_TaskSettlesAfterExplicitAbort_EndsAborted(string outcome)
    {
        // Once aborted, how the provider settles no longer decides the reason: the run was aborted.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        run.Abort();

        Settle(provider, outcome);

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public void Attach_ToStaleHandle_DoesNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);

        a.Attach(Task.FromException(new InvalidOperationException("late output of run A")));

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
    }

    [Fact]
    public async Task Dispose_WhileAttachedTaskPending_EndsCompletedAndLaterSettlingChangesNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);

        run.Dispose();
        provider.SetException(new InvalidOperationException("after the owner released"));

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle();
        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().BeEmpty("a released run was never abandoned");
    }

    // ---- TryExtendDeadline ----------------------------------------------------------------

    [Fact]
    public void TryExtendDeadline_WithinCap_MovesDeadline()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(TimeSpan.FromMinutes(3));

        run.TryExtendDeadline(TimeSpan.FromMinutes(5)).Should().BeTrue();

        run.Deadline.Should().Be(run.StartedAt + TimeSpan.FromMinutes(15), "the extension is added to the deadline, not to now");
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.Deadline.Should().Be(run.Deadline);
        run.Status.Should().Be(RunStatus.Running);
    }

    [Fact]
    public void TryExtendDeadline_ExactlyToCapThenOneTickMore_SecondFailsAndChangesNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        DateTimeOffset cap = run.StartedAt + f.Options.MaxRunDuration;

        run.TryExtendDeadline(cap - run.Deadline).Should().BeTrue("reaching the cap exactly is allowed");
        run.Deadline.Should().Be(cap);

        run.TryExtendDeadline(TestTime.Tick).Should().BeFalse();
        run.Deadline.Should().Be(cap);
    }

    [Fact]
    public void TryExtendDeadline_Repeatedly_StopsAtCap()
    {
        // A long compaction that keeps asking for more: it gets up to MaxRunDuration, never beyond.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var results = new List<bool>();
        for (int i = 0; i < 7; i++)
        {
            results.Add(run.TryExtendDeadline(TimeSpan.FromMinutes(10)));
        }

        results.Should().Equal(true, true, true, true, true, false, false);
        run.Deadline.Should().Be(run.StartedAt + f.Options.MaxRunDuration);
    }

    public static TheoryData<TimeSpan> ExtensionsPastCap => new()
    {
        TimeSpan.FromMinutes(50) + TimeSpan.FromTicks(1),
        TimeSpan.FromHours(2),
        TimeSpan.MaxValue,
    };

    [Theory]
    [MemberData(nameof(ExtensionsPastCap))]
    public void TryExtendDeadline_PastCap_ReturnsFalseAndRunStillTimesOutOnTime(TimeSpan extension)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        DateTimeOffset original = run.Deadline;

        run.TryExtendDeadline(extension).Should().BeFalse();

        run.Deadline.Should().Be(original);
        f.Time.Advance(RegistryFixture.Timeout);
        run.Status.Should().Be(RunStatus.Aborting, "the refused extension left the original deadline in force");
    }

    [Fact]
    public void TryExtendDeadline_CapCountsFromStartNotFromNow()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(TimeSpan.FromMinutes(9));

        // Deadline 10 min + 51 min = 61 min after the start: past the 1 h cap, though within 1 h of now.
        run.TryExtendDeadline(TimeSpan.FromMinutes(51)).Should().BeFalse();
        run.Deadline.Should().Be(run.StartedAt + RegistryFixture.Timeout);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(-600_000_000L)]
    public void TryExtendDeadline_NonPositive_ThrowsArgumentOutOfRange(long ticks)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        DateTimeOffset original = run.Deadline;

        Action act = () => run.TryExtendDeadline(TimeSpan.FromTicks(ticks));

        act.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("extension");
        run.Deadline.Should().Be(original);
    }

    [Theory]
    [InlineData("aborted")]
    [InlineData("timed out")]
    [InlineData("released")]
    [InlineData("superseded")]
    [InlineData("evicted")]
    public void TryExtendDeadline_RunNotRunning_ReturnsFalse(string state)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        switch (state)
        {
            case "aborted":
                run.Abort();
                break;
            case "timed out":
                f.Time.Advance(RegistryFixture.Timeout);
                break;
            case "released":
                run.Dispose();
                break;
            case "superseded":
                f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
                break;
            case "evicted":
                f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
                break;
        }

        DateTimeOffset before = run.Deadline;

        run.TryExtendDeadline(TimeSpan.FromMinutes(1)).Should().BeFalse();

        run.Deadline.Should().Be(before);
    }

    // ---- Identity, status, token, completion ------------------------------------------------------------

    [Fact]
    public void Start_Handle_CarriesSessionStartDeadlineAndIncreasingRunIds()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();

        RunHandle a = f.Registry.Start(Session);
        RunHandle other = f.Registry.Start("s2", new RunStartOptions { Timeout = TimeSpan.FromMinutes(2) });
        a.Dispose();
        f.Time.Advance(TimeSpan.FromSeconds(1));
        RunHandle b = f.Registry.Start(Session);

        a.SessionId.Should().Be(Session);
        a.StartedAt.Should().Be(t0);
        a.Deadline.Should().Be(t0 + RegistryFixture.Timeout);
        other.Deadline.Should().Be(t0 + TimeSpan.FromMinutes(2), "a per-run timeout overrides the registry's");
        b.StartedAt.Should().Be(t0 + TimeSpan.FromSeconds(1));
        new[] { a.RunId, other.RunId, b.RunId }.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public void IsCurrent_TrueWhileRegisteredAndStaysFalseWhenSessionIsReused()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.IsCurrent.Should().BeTrue();

        a.Abort();
        a.IsCurrent.Should().BeTrue("aborting, but still the session's entry");

        a.Dispose();
        a.IsCurrent.Should().BeFalse();

        // Same session id, new run: A must not look current again.
        RunHandle b = f.Registry.Start(Session);
        a.IsCurrent.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public void Status_ReleasedRun_GoesRunningThenEnded()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Status.Should().Be(RunStatus.Running);

        run.Dispose();

        run.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void Status_TimedOutZombie_GoesRunningAbortingEvicted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        f.Time.Advance(RegistryFixture.Timeout - TestTime.Tick);
        run.Status.Should().Be(RunStatus.Running);
        f.Time.Advance(TestTime.Tick);
        run.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(RegistryFixture.Grace);
        run.Status.Should().Be(RunStatus.Evicted);

        run.Dispose();
        run.Status.Should().Be(RunStatus.Evicted, "a late release does not rewrite how the run left");
    }

    [Fact]
    public void Status_SupersededRun_IsEnded()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);

        f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void AbortToken_NormalRelease_IsNotCancelled()
    {
        using var f = new RegistryFixture();
        RunHandle released = f.Registry.Start(Session);
        RunHandle completed = f.Registry.Start("s2");
        completed.Attach(Task.CompletedTask);

        released.Dispose();

        released.AbortToken.IsCancellationRequested.Should().BeFalse();
        completed.AbortToken.IsCancellationRequested.Should().BeFalse();
        released.Completion.IsCompleted.Should().BeTrue();
        completed.Completion.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public void AbortToken_Superseded_IsCancelled()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);

        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.AbortToken.IsCancellationRequested.Should().BeTrue();
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task AbortToken_RegistryDisposed_IsCancelledAndRunEndsAborted()
    {
        var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        f.Dispose();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        run.Invoking(r => r.Dispose()).Should().NotThrow("disposing a handle never throws, even after the registry is gone");
    }

    [Fact]
    public async Task Completion_AfterRunEnded_NeverChangesAndRunEndsOnce()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        run.Dispose();
        Task<RunEndReason> completion = run.Completion;

        // Everything that could end a run again: abort, a second release, the provider settling,
        // the deadline and the grace period passing, and a new run superseding on the session.
        run.Abort();
        run.Dispose();
        provider.SetException(new InvalidOperationException("late"));
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace + TimeSpan.FromMinutes(1));
        f.Registry.Start(Session);
        f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        run.Completion.Should().BeSameAs(completion);
        (await completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.EndedFor(run.RunId).Should().ContainSingle();
        run.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public async Task Completion_Continuations_RunAsynchronously()
    {
        // A continuation that asks to run synchronously must still not run inside Dispose (under the
        // caller's locks). Monitor.IsEntered is true only on the thread that holds the lock, inside it.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        object callersLock = new();
        bool? ranInsideDispose = null;
        Task continuation = run.Completion.ContinueWith(
            _ => ranInsideDispose = Monitor.IsEntered(callersLock),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        lock (callersLock)
        {
            run.Dispose();
        }

        await continuation.WaitAsync(TestTime.HangGuard);
        ranInsideDispose.Should().BeFalse();
    }

    private static async Task Release(RunHandle run, bool useDisposeAsync)
    {
        if (useDisposeAsync)
        {
            await run.DisposeAsync();
        }
        else
        {
            run.Dispose();
        }
    }

    private static void Settle(TaskCompletionSource provider, string outcome)
    {
        switch (outcome)
        {
            case "complete":
                provider.SetResult();
                break;
            case "fault":
                provider.SetException(new InvalidOperationException("provider failed"));
                break;
            case "cancel":
                provider.SetCanceled();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null);
        }
    }
}
