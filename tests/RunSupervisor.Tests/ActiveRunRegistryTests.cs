using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests;

/// <summary>
/// The synchronous surface of <see cref="ActiveRunRegistry"/>: starting runs, snapshots, aborting by session id
/// with a fencing run id, superseding, bad input, disposal of the registry and throwing RunEnded subscribers.
/// </summary>
public sealed class ActiveRunRegistryTests
{
    // Long enough that it never elapses in a test that does not advance the fake clock by that much.
    private static readonly TimeSpan WaitTimeout = TimeSpan.FromMinutes(1);

    [ThreadStatic]
    private static bool _insideDispose;

    // ---------------------------------------------------------------------------------------------------------
    // Start / TryStart / IsActive / snapshots
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void Start_AfterAWallClockStep_StartedAtFollowsTheNewWallClockWithinASecond()
    {
        var clock = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(timeProvider: clock);
        DateTimeOffset before = clock.GetUtcNow();

        clock.StepWallClock(TimeSpan.FromHours(1));
        using (RunHandle early = registry.Start("early"))
        {
            early.StartedAt.Should().Be(before, "the wall-clock offset is re-read at most once a second of monotonic time");
        }

        clock.Elapse(TimeSpan.FromSeconds(1));
        using RunHandle late = registry.Start("late");

        late.StartedAt.Should().Be(clock.GetUtcNow());
        late.Deadline.Should().Be(late.StartedAt + new RunSupervisorOptions().RunTimeout);
    }

    [Fact]
    public void Start_IdleSession_ReturnsRunningCurrentHandle()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(5)); // so StartedAt is not simply the fake clock's initial value
        DateTimeOffset now = f.Time.GetUtcNow();

        RunHandle run = f.Registry.Start("s1");

        run.SessionId.Should().Be("s1");
        run.RunId.Should().BePositive();
        run.StartedAt.Should().Be(now);
        run.Deadline.Should().Be(now + RegistryFixture.Timeout);
        run.Status.Should().Be(RunStatus.Running);
        run.IsCurrent.Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        run.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.IsActive("s2").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void IsActive_SessionIdsDifferingOnlyInCase_AreDistinctSessions()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("Session");

        f.Registry.IsActive("Session").Should().BeTrue();
        f.Registry.IsActive("session").Should().BeFalse();
    }

    [Fact]
    public void Start_BusySession_ThrowsSessionBusyNamingSessionAndCurrentRun()
    {
        using var f = new RegistryFixture();

        // A few earlier runs so the current run id is not simply 1.
        f.Registry.Start("other-1").Dispose();
        f.Registry.Start("other-2").Dispose();
        RunHandle current = f.Registry.Start("busy-session");

        SessionBusyException ex = f.Registry.Invoking(r => r.Start("busy-session"))
            .Should().ThrowExactly<SessionBusyException>().Which;

        ex.SessionId.Should().Be("busy-session");
        ex.RunId.Should().Be(current.RunId);
        ex.Message.Should().Contain("'busy-session'").And.Contain($"RunId {current.RunId}");

        // The refused start changed nothing.
        current.IsCurrent.Should().BeTrue();
        current.Status.Should().Be(RunStatus.Running);
        current.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.Ended.Should().HaveCount(2);
    }

    [Fact]
    public void TryStart_IdleSession_ReturnsTrueAndCurrentHandle()
    {
        using var f = new RegistryFixture();

        bool started = f.Registry.TryStart("s1", out RunHandle? run);

        started.Should().BeTrue();
        run.Should().NotBeNull();
        run!.SessionId.Should().Be("s1");
        run.IsCurrent.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeTrue();
    }

    [Fact]
    public void TryStart_BusySession_ReturnsFalseAndNullAndLeavesCurrentRunAlone()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start("s1");

        bool started = f.Registry.TryStart("s1", out RunHandle? second);

        started.Should().BeFalse();
        second.Should().BeNull();
        current.IsCurrent.Should().BeTrue();
        current.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.Registry.TryGetRun("s1", out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(current.RunId);
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void Start_SuccessiveRuns_RunIdsStrictlyIncreaseAcrossSessionsAndRestarts()
    {
        using var f = new RegistryFixture();
        var ids = new List<long>();

        RunHandle a = f.Registry.Start("s1");
        ids.Add(a.RunId);
        ids.Add(f.Registry.Start("s2").RunId);
        a.Dispose();
        ids.Add(f.Registry.Start("s1").RunId);                                          // same session, after release
        ids.Add(f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).RunId); // same session, superseding
        f.Registry.TryStart("s3", out RunHandle? viaTry).Should().BeTrue();
        ids.Add(viaTry!.RunId);

        ids.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public void TryGetRun_ActiveSession_ReturnsPointInTimeSnapshot()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(7));
        DateTimeOffset startedAt = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryGetRun("s1", out RunInfo? before).Should().BeTrue();
        before.Should().Be(new RunInfo("s1", run.RunId, startedAt, startedAt + RegistryFixture.Timeout, RunStatus.Running, run.RunId, startedAt, Background: false, Lane: null));

        run.Abort();

        // The earlier snapshot does not follow the run; a new one does.
        before!.Status.Should().Be(RunStatus.Running);
        f.Registry.TryGetRun("s1", out RunInfo? after).Should().BeTrue();
        after!.Status.Should().Be(RunStatus.Aborting);
        after.RunId.Should().Be(run.RunId);
    }

    [Fact]
    public void TryGetRun_IdleOrReleasedSession_ReturnsFalseAndNull()
    {
        using var f = new RegistryFixture();

        f.Registry.TryGetRun("never-used", out RunInfo? none).Should().BeFalse();
        none.Should().BeNull();

        f.Registry.Start("s1").Dispose();
        f.Registry.TryGetRun("s1", out RunInfo? released).Should().BeFalse();
        released.Should().BeNull();
    }

    [Fact]
    public void GetActiveRuns_SeveralSessions_ListsOneSnapshotPerActiveRunOrderedByRunId()
    {
        using var f = new RegistryFixture();
        f.Registry.GetActiveRuns().Should().BeEmpty();

        RunHandle c = f.Registry.Start("c");
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        a.Dispose();

        IReadOnlyList<RunInfo> runs = f.Registry.GetActiveRuns();

        runs.Select(r => (r.SessionId, r.RunId)).Should().Equal(("c", c.RunId), ("b", b.RunId));
        runs.Should().BeInAscendingOrder(r => r.RunId);
        f.Registry.ActiveCount.Should().Be(2);

        // A snapshot: later starts do not show up in a list already returned.
        f.Registry.Start("d");
        runs.Should().HaveCount(2);
        f.Registry.GetActiveRuns().Should().HaveCount(3);
        f.Registry.ActiveCount.Should().Be(3);
    }

    [Fact]
    public void ActiveCount_StartsAndReleases_TracksNumberOfBusySessions()
    {
        using var f = new RegistryFixture();
        f.Registry.ActiveCount.Should().Be(0);

        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        f.Registry.ActiveCount.Should().Be(2);

        // Superseding replaces a run: the count stays the same.
        f.Registry.Start("a", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        f.Registry.ActiveCount.Should().Be(2);

        b.Dispose();
        f.Registry.ActiveCount.Should().Be(1);

        // A stale release (a was superseded) does not decrement.
        a.Dispose();
        f.Registry.ActiveCount.Should().Be(1);
    }

    [Fact]
    public void Start_PerRunTimeoutOverride_SetsDeadlineFromOverride()
    {
        using var f = new RegistryFixture();
        DateTimeOffset now = f.Time.GetUtcNow();

        RunHandle run = f.Registry.Start("s1", new RunStartOptions { Timeout = TimeSpan.FromSeconds(42) });

        run.Deadline.Should().Be(now + TimeSpan.FromSeconds(42));
    }

    // ---------------------------------------------------------------------------------------------------------
    // TryAbort(sessionId, expectedRunId)
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public void TryAbort_ExpectedRunIdOfEarlierRun_DoesNothingToCurrentRun()
    {
        // The race the fencing token exists for: a caller saw run A, A ended, B started; the caller's abort of A
        // must not hit B.
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("s1");
        a.Dispose();
        RunHandle b = f.Registry.Start("s1");

        bool aborted = f.Registry.TryAbort("s1", expectedRunId: a.RunId);

        aborted.Should().BeFalse();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.LogsWithEvent("RunAborted").Should().BeEmpty();

        // Nor does the watchdog treat B as aborted: nothing happens to it within a grace period.
        f.Time.Advance(RegistryFixture.Grace + TimeSpan.FromSeconds(1));
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
    }

    [Fact]
    public void TryAbort_ExpectedRunIdOfLaterRun_DoesNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryAbort("s1", expectedRunId: run.RunId + 1).Should().BeFalse();

        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public void TryAbort_ExpectedRunIdMatches_AbortsRunAndLogsReason()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        bool aborted = f.Registry.TryAbort("s1", expectedRunId: run.RunId, reason: "user pressed stop");

        aborted.Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);

        // Aborting is not ending: the run keeps the session until it settles or its grace period runs out.
        f.Registry.IsActive("s1").Should().BeTrue();
        run.Completion.IsCompleted.Should().BeFalse();
        FakeLogRecord log = f.LogsWithEvent("RunAborted").Should().ContainSingle().Subject;
        log.Level.Should().Be(LogLevel.Information);
        log.Message.Should().Contain("user pressed stop").And.Contain("'s1'");
    }

    [Fact]
    public async Task TryAbort_ThenRelease_EndsRunWithReasonAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.TryAbort("s1", run.RunId).Should().BeTrue();

        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Registry.IsActive("s1").Should().BeFalse();
    }

    [Fact]
    public void TryAbort_WithoutExpectedRunId_AbortsCurrentRun()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryAbort("s1").Should().BeTrue();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public void TryAbort_NoRunOnSession_ReturnsFalse()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("other");

        f.Registry.TryAbort("s1").Should().BeFalse();
        f.Registry.TryAbort("s1", expectedRunId: 1).Should().BeFalse();

        f.Registry.Start("s1").Dispose();
        f.Registry.TryAbort("s1").Should().BeFalse();
        f.LogsWithEvent("RunAborted").Should().BeEmpty();
    }

    [Fact]
    public void TryAbort_SecondCall_ReturnsFalseAndDoesNotRestartGracePeriod()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.TryAbort("s1", run.RunId).Should().BeTrue();
        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromSeconds(10));

        f.Registry.TryAbort("s1", run.RunId).Should().BeFalse();
        f.Registry.TryAbort("s1").Should().BeFalse();

        // The eviction instant is still one grace period after the first abort, not after the second call.
        f.Time.Advance(TimeSpan.FromSeconds(10));
        f.Registry.IsActive("s1").Should().BeFalse();
        run.Status.Should().Be(RunStatus.Evicted);
        f.LogsWithEvent("RunAborted").Should().ContainSingle();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Supersede
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Start_SupersedeOnBusySession_EndsOldRunSupersededAndInstallsNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");

        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.AbortToken.IsCancellationRequested.Should().BeTrue();
        old.Status.Should().Be(RunStatus.Ended);
        old.IsCurrent.Should().BeFalse();
        (await old.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);

        replacement.RunId.Should().BeGreaterThan(old.RunId);
        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        replacement.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.ActiveCount.Should().Be(1);
        f.Registry.TryGetRun("s1", out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(replacement.RunId);

        // Exactly one RunEnded, for the old run, raised once its entry was no longer the session's.
        (RunEndedEventArgs args, bool stillRegistered) = f.Ended.Should().ContainSingle().Subject;
        args.RunId.Should().Be(old.RunId);
        args.SessionId.Should().Be("s1");
        args.Reason.Should().Be(RunEndReason.Superseded);
        stillRegistered.Should().BeFalse();
        f.LogsWithEvent("RunSuperseded").Should().ContainSingle();
    }

    [Fact]
    public async Task TryStart_SupersedeOnBusySession_ReturnsTrueAndReplacesRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");

        bool started = f.Registry.TryStart("s1", out RunHandle? replacement, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        started.Should().BeTrue();
        replacement!.IsCurrent.Should().BeTrue();
        (await old.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public void Start_SupersedeOnIdleSession_StartsNormallyWithoutEndingAnything()
    {
        using var f = new RegistryFixture();

        RunHandle run = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        run.IsCurrent.Should().BeTrue();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunSuperseded").Should().BeEmpty();
    }

    [Fact]
    public async Task Start_Supersede_WaiterOnOldRunResolvesAndLaterWaiterWaitsForNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        Task<bool> waiterOnOld = f.Registry.WaitForRunEndAsync("s1", WaitTimeout);
        waiterOnOld.IsCompleted.Should().BeFalse();

        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await waiterOnOld.WaitAsync(TestTime.HangGuard)).Should().BeTrue();

        // A wait started now is for the replacement, which is still running.
        Task<bool> waiterOnNew = f.Registry.WaitForRunEndAsync("s1", WaitTimeout);
        waiterOnNew.IsCompleted.Should().BeFalse();
        replacement.Dispose();
        (await waiterOnNew.WaitAsync(TestTime.HangGuard)).Should().BeTrue();
        old.IsCurrent.Should().BeFalse();
    }

    [Fact]
    public void Start_Supersede_OldHandlesLateDisposeDoesNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.Dispose();
        old.Dispose();

        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        replacement.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.ActiveCount.Should().Be(1);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(old.RunId);
        f.LogsWithEvent("StaleReleaseIgnored").Should().NotBeEmpty()
            .And.OnlyContain(r => r.Level == LogLevel.Debug);
    }

    [Fact]
    public void Start_Supersede_OldRunsDeadlineAndGraceDoNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        old.Attach(new TaskCompletionSource().Task); // a provider that never settles
        f.Time.Advance(TimeSpan.FromMinutes(5));
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        // Past the old run's deadline and grace, but well before the new run's deadline.
        f.Time.Advance(RegistryFixture.Timeout - TimeSpan.FromMinutes(5) + RegistryFixture.Grace + TimeSpan.FromSeconds(1));

        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        old.Status.Should().Be(RunStatus.Ended);
        f.Ended.Should().ContainSingle();
        f.LogsWithEvent("RunTimedOut").Should().BeEmpty();
        f.LogsWithEvent("RunForceEvicted").Should().BeEmpty();
    }

    [Fact]
    public void Start_SupersedeRunWithPendingProviderTask_PutsOldRunInAbandonedLedger()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(3));
        RunHandle old = f.Registry.Start("s1");
        var provider = new TaskCompletionSource();
        old.Attach(provider.Task);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        DateTimeOffset supersededAt = f.Time.GetUtcNow();

        f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle()
            .Which.Should().Be(new AbandonedRunInfo("s1", old.RunId, old.StartedAt, supersededAt));

        // When the abandoned provider finally settles, it leaves the ledger.
        provider.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void Start_SupersedeRunWithoutAttachedTask_KeepsItInLedgerUntilItsHandleIsDisposed()
    {
        // Without an attached task the registry cannot see the provider settle; the owner's release is the sign.
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        f.Registry.GetAbandonedRuns().Select(a => a.RunId).Should().Equal(old.RunId);

        old.Dispose();

        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle();
        replacement.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public void Start_SupersedeRunAlreadyReleased_NothingToSupersedeAndLedgerStaysEmpty()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start("s1");
        first.Attach(Task.CompletedTask); // settles at once: the run is released

        f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
        f.LogsWithEvent("RunSuperseded").Should().BeEmpty();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Bad input, per-run overrides, constructor arguments
    // ---------------------------------------------------------------------------------------------------------

    // Every public member that takes a session id.
    private static readonly string[] MembersTakingSessionId =
        ["Start", "TryStart", "IsActive", "TryGetRun", "TryAbort", "WaitForRunEndAsync", "RunAsync<T>", "RunAsync"];

    public static TheoryData<string> SessionIdMembers => new(MembersTakingSessionId);

    public static TheoryData<string, string> SessionIdMembersWithBadIds
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (string member in MembersTakingSessionId)
            {
                foreach (string kind in new[] { "empty", "space", "tab-newline", "257 chars" })
                {
                    data.Add(member, kind);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(SessionIdMembers))]
    public void SessionIdMember_NullSessionId_ThrowsArgumentNullNamingSessionId(string member)
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => CallWithSessionId(r, member, null!))
            .Should().ThrowExactly<ArgumentNullException>()
            .Which.ParamName.Should().Be("sessionId");
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(SessionIdMembersWithBadIds))]
    public void SessionIdMember_EmptyWhiteSpaceOrTooLongSessionId_ThrowsArgumentExceptionNamingSessionId(string member, string kind)
    {
        using var f = new RegistryFixture();
        string sessionId = kind switch
        {
            "empty" => string.Empty,
            "space" => " ",
            "tab-newline" => "\t\r\n ",
            "257 chars" => new string('x', ActiveRunRegistry.MaxSessionIdLength + 1),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind."),
        };

        f.Registry.Invoking(r => CallWithSessionId(r, member, sessionId))
            .Should().ThrowExactly<ArgumentException>()
            .Which.ParamName.Should().Be("sessionId");
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(SessionIdMembers))]
    public void SessionIdMember_SessionIdOfExactly256Chars_IsAccepted(string member)
    {
        using var f = new RegistryFixture();
        string sessionId = new('x', 256);

        f.Registry.Invoking(r => CallWithSessionId(r, member, sessionId)).Should().NotThrow();
    }

    [Fact]
    public void Start_SessionIdOfExactly256Chars_IsTrackedLikeAnyOther()
    {
        using var f = new RegistryFixture();
        string sessionId = new('s', 256);

        RunHandle run = f.Registry.Start(sessionId);

        ActiveRunRegistry.MaxSessionIdLength.Should().Be(256);
        f.Registry.IsActive(sessionId).Should().BeTrue();
        f.Registry.TryGetRun(sessionId, out RunInfo? info).Should().BeTrue();
        info!.SessionId.Should().Be(sessionId);
        f.Registry.TryAbort(sessionId, run.RunId).Should().BeTrue();
    }

    public static TheoryData<string> InvalidOverrides =>
        ["Timeout zero", "Timeout negative", "Timeout above MaxRunDuration", "GracePeriod negative", "GracePeriod above 24 days"];

    [Theory]
    [MemberData(nameof(InvalidOverrides))]
    public void Start_PerRunOverrideOutOfRange_ThrowsAndLeavesRegistryUnchanged(string kind)
    {
        using var f = new RegistryFixture();
        RunHandle existing = f.Registry.Start("busy");
        (RunStartOptions bad, string optionName) = InvalidOverride(kind, f.Options, supersede: false);
        (RunStartOptions badSupersede, _) = InvalidOverride(kind, f.Options, supersede: true);

        f.Registry.Invoking(r => r.Start("idle", bad))
            .Should().ThrowExactly<ArgumentOutOfRangeException>()
            .WithMessage($"*{optionName}*");
        f.Registry.Invoking(r => r.TryStart("idle", out _, bad))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();

        // Validation happens before anything else: an invalid supersede does not abort the current run.
        f.Registry.Invoking(r => r.Start("busy", badSupersede))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();
        f.Registry.Invoking(r => r.TryStart("busy", out _, badSupersede))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();

        f.Registry.IsActive("idle").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        existing.IsCurrent.Should().BeTrue();
        existing.Status.Should().Be(RunStatus.Running);
        existing.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void Start_PerRunOverridesAtTheirLimits_AreAccepted()
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => r.Start("max-timeout", new RunStartOptions { Timeout = f.Options.MaxRunDuration }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("zero-grace", new RunStartOptions { GracePeriod = TimeSpan.Zero }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("max-grace", new RunStartOptions { GracePeriod = RunSupervisorOptions.GracePeriodLimit }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("tiny-timeout", new RunStartOptions { Timeout = TimeSpan.FromTicks(1) }))
            .Should().NotThrow();
        f.Registry.ActiveCount.Should().Be(4);
    }

    [Fact]
    public void Start_TimeoutOverridePastRunTimeoutLimit_ThrowsOutOfRangeAndLeavesRegistryUnchanged()
    {
        // MaxRunDuration may be up to 365 days, but a single timeout never exceeds RunTimeoutLimit (24 days):
        // Start must refuse it before it registers anything, or the session is held by a run whose handle
        // nobody ever received.
        using var f = new RegistryFixture(new RunSupervisorOptions { MaxRunDuration = RunSupervisorOptions.MaxRunDurationLimit });
        using (new FluentAssertions.Execution.AssertionScope())
        {
            f.Registry.Invoking(r => r.Start("s1", new RunStartOptions { Timeout = RunSupervisorOptions.RunTimeoutLimit + TimeSpan.FromTicks(1) }))
                .Should().ThrowExactly<ArgumentOutOfRangeException>()
                .Which.ParamName.Should().Be("options");
            f.Registry.IsActive("s1").Should().BeFalse("a Start that throws must not leave a run behind");
            f.Registry.ActiveCount.Should().Be(0);
        }

        f.Registry.Start("s1", new RunStartOptions { Timeout = RunSupervisorOptions.RunTimeoutLimit }).Deadline
            .Should().Be(f.Time.GetUtcNow() + RunSupervisorOptions.RunTimeoutLimit);
    }

    public static TheoryData<string, bool> InvalidRegistryOptions
    {
        get
        {
            var data = new TheoryData<string, bool>();
            foreach (string kind in new[]
            {
                "RunTimeout zero", "RunTimeout negative", "RunTimeout above 24 days", "GracePeriod negative",
                "GracePeriod above 24 days", "MaxRunDuration below RunTimeout", "MaxAbandonedRuns zero",
            })
            {
                data.Add(kind, false);
                data.Add(kind, true);
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(InvalidRegistryOptions))]
    public void Constructor_InvalidOptions_ThrowsOptionsValidationNamingOption(string kind, bool dependencyInjectionConstructor)
    {
        var time = new FakeTimeProvider();
        var options = new RunSupervisorOptions { MaxRunDuration = TimeSpan.FromDays(30) };
        string optionName;
        switch (kind)
        {
            case "RunTimeout zero": options.RunTimeout = TimeSpan.Zero; optionName = "RunTimeout"; break;
            case "RunTimeout negative": options.RunTimeout = TimeSpan.FromSeconds(-1); optionName = "RunTimeout"; break;
            case "RunTimeout above 24 days": options.RunTimeout = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1); optionName = "RunTimeout"; break;
            case "GracePeriod negative": options.GracePeriod = TimeSpan.FromTicks(-1); optionName = "GracePeriod"; break;
            case "GracePeriod above 24 days": options.GracePeriod = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1); optionName = "GracePeriod"; break;
            case "MaxRunDuration below RunTimeout": options.MaxRunDuration = options.RunTimeout - TimeSpan.FromTicks(1); optionName = "MaxRunDuration"; break;
            case "MaxAbandonedRuns zero": options.MaxAbandonedRuns = 0; optionName = "MaxAbandonedRuns"; break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind.");
        }

        Func<ActiveRunRegistry> construct = dependencyInjectionConstructor
            ? () => new ActiveRunRegistry(Microsoft.Extensions.Options.Options.Create(options), time, NullLogger<ActiveRunRegistry>.Instance)
            : () => new ActiveRunRegistry(options, time, NullLoggerFactory.Instance);

        OptionsValidationException ex = construct.Should().ThrowExactly<OptionsValidationException>().Which;
        ex.OptionsType.Should().Be<RunSupervisorOptions>();
        ex.Failures.Should().ContainSingle().Which.Should().Contain($"RunSupervisorOptions.{optionName}");
    }

    [Fact]
    public void Constructor_NullArguments_ThrowArgumentNullNamingParameter()
    {
        IOptions<RunSupervisorOptions> options = Microsoft.Extensions.Options.Options.Create(new RunSupervisorOptions());
        var time = new FakeTimeProvider();
        ILogger<ActiveRunRegistry> logger = NullLogger<ActiveRunRegistry>.Instance;

        FluentActions.Invoking(() => new ActiveRunRegistry(null!, time, logger))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("options");
        FluentActions.Invoking(() => new ActiveRunRegistry(options, null!, logger))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("timeProvider");
        FluentActions.Invoking(() => new ActiveRunRegistry(options, time, null!))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("logger");
    }

    [Fact]
    public void Constructor_ConvenienceWithoutArguments_UsesDefaultOptions()
    {
        // Null options, time provider and logger factory mean the defaults; the default timeout is 10 minutes.
        using var registry = new ActiveRunRegistry();

        RunHandle run = registry.Start("s1");

        (run.Deadline - run.StartedAt).Should().Be(TimeSpan.FromMinutes(10));
        run.Dispose();
        registry.IsActive("s1").Should().BeFalse();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Disposal of the registry
    // ---------------------------------------------------------------------------------------------------------

    public static TheoryData<string> PublicMembers =>
    [
        "ActiveCount", "AbandonedCount", "Start", "TryStart", "IsActive", "TryGetRun", "GetActiveRuns",
        "GetAbandonedRuns", "TryAbort", "WaitForRunEndAsync", "DrainAsync", "RunAsync<T>", "RunAsync",
    ];

    [Theory]
    [MemberData(nameof(PublicMembers))]
    public void PublicMember_AfterRegistryDisposed_ThrowsObjectDisposed(string member)
    {
        using var f = new RegistryFixture();
        f.Registry.Start("s1"); // so members that act on a run have one to (not) act on
        f.Registry.Dispose();

        f.Registry.Invoking(r => CallAfterDispose(r, member)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task Dispose_RunsInEveryState_AbortsAndEndsEachOnceWithReasonAborted()
    {
        using var f = new RegistryFixture();

        // One run past its deadline (aborting, its grace timer pending) ...
        RunHandle timedOut = f.Registry.Start("timed-out");
        f.Time.Advance(RegistryFixture.Timeout);
        timedOut.Status.Should().Be(RunStatus.Aborting);

        // ... one running with a provider that never settles, one explicitly aborted, one plain running.
        RunHandle hanging = f.Registry.Start("hanging");
        var provider = new TaskCompletionSource();
        hanging.Attach(provider.Task);
        RunHandle aborted = f.Registry.Start("aborted");
        aborted.Abort();
        RunHandle running = f.Registry.Start("running");
        RunHandle[] runs = [timedOut, hanging, aborted, running];

        f.Registry.Dispose();

        runs.Should().OnlyContain(r => r.AbortToken.IsCancellationRequested);
        runs.Should().OnlyContain(r => r.Status == RunStatus.Ended && !r.IsCurrent);
        foreach (RunHandle run in runs)
        {
            (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        }

        f.Ended.Select(e => e.Args.RunId).Should().BeEquivalentTo(runs.Select(r => r.RunId));
        f.Ended.Should().OnlyContain(e => e.Args.Reason == RunEndReason.Aborted && !e.StillRegistered);

        // Late settles and releases after the registry is gone end nothing a second time.
        provider.SetResult();
        foreach (RunHandle run in runs)
        {
            run.Dispose();
            run.Abort().Should().BeFalse();
        }

        f.Ended.Should().HaveCount(runs.Length);
        f.LogsWithEvent("RunEnded").Should().HaveCount(runs.Length);
    }

    [Fact]
    public void Dispose_ThenAdvancePastEveryDeadline_NoTimerFires()
    {
        using var f = new RegistryFixture();
        RunHandle timedOut = f.Registry.Start("timed-out");
        f.Time.Advance(RegistryFixture.Timeout);
        f.Registry.Start("hanging").Attach(new TaskCompletionSource().Task);
        f.Registry.Start("aborted").Abort();
        f.Registry.Start("running");
        int timedOutLogs = f.LogsWithEvent("RunTimedOut").Count();
        timedOutLogs.Should().Be(1, "the first run passed its deadline before the registry was disposed");

        f.Registry.Dispose();
        int endedAtDispose = f.Ended.Count;
        int logsAtDispose = f.Logs.Count;

        // Far past every deadline and grace period, in steps and in one jump.
        f.Time.Advance(RegistryFixture.Grace);
        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(TimeSpan.FromDays(30));

        f.Ended.Should().HaveCount(endedAtDispose);
        f.LogsWithEvent("RunTimedOut").Should().HaveCount(timedOutLogs);
        f.LogsWithEvent("RunForceEvicted").Should().BeEmpty();
        f.Logs.Should().HaveCount(logsAtDispose);
        timedOut.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void Dispose_Twice_SecondCallIsNoOp()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.Dispose();
        int logs = f.Logs.Count;

        f.Registry.Invoking(r => r.Dispose()).Should().NotThrow();

        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(run.RunId);
        f.Logs.Should().HaveCount(logs);
    }

    [Fact]
    public async Task DisposeAsync_WithActiveRun_EndsRunAbortedAndDisposesRegistry()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        await f.Registry.DisposeAsync();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Registry.Invoking(r => r.IsActive("s1")).Should().Throw<ObjectDisposedException>();
        await f.Registry.Invoking(r => r.DisposeAsync().AsTask()).Should().NotThrowAsync();
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public async Task Dispose_WaiterOnRun_ResolvesTrue()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("s1");
        Task<bool> waiter = f.Registry.WaitForRunEndAsync("s1", WaitTimeout);

        f.Registry.Dispose();

        (await waiter.WaitAsync(TestTime.HangGuard)).Should().BeTrue();
    }

    // ---------------------------------------------------------------------------------------------------------
    // RunEnded: subscribers, ordering
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task RunEnded_SubscriberThrows_IsLoggedOtherSubscribersRunAndRegistryStaysConsistent()
    {
        using var f = new RegistryFixture(); // its own recorder is the first subscriber
        var failure = new InvalidOperationException("subscriber bug");
        f.Registry.RunEnded += (_, _) => throw failure;
        var seenAfterThrower = new List<long>();
        f.Registry.RunEnded += (_, e) => seenAfterThrower.Add(e.RunId);
        RunHandle run = f.Registry.Start("s1");

        run.Invoking(r => r.Dispose()).Should().NotThrow();

        seenAfterThrower.Should().Equal(run.RunId);
        f.Ended.Should().ContainSingle();
        FakeLogRecord log = f.LogsWithEvent("CallbackFailed").Should().ContainSingle().Subject;
        log.Level.Should().Be(LogLevel.Error);
        log.Exception.Should().BeSameAs(failure);
        log.Message.Should().Contain("'s1'").And.Contain("RunEnded");

        f.Registry.IsActive("s1").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);

        RunHandle next = f.Registry.Start("s1");
        next.IsCurrent.Should().BeTrue();
        next.Dispose();
        seenAfterThrower.Should().Equal(run.RunId, next.RunId);
        f.LogsWithEvent("CallbackFailed").Should().HaveCount(2);
    }

    [Fact]
    public async Task RunEnded_SubscriberThrowsDuringWatchdogEviction_WatchdogKeepsWorking()
    {
        // The throw happens on the timer callback's thread; a broken watchdog would leave the second run alone.
        using var f = new RegistryFixture();
        f.Registry.RunEnded += (_, _) => throw new InvalidOperationException("subscriber bug");
        RunHandle first = f.Registry.Start("s1");
        first.Attach(new TaskCompletionSource().Task);

        f.Invoking(x => x.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace)).Should().NotThrow();

        (await first.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        RunHandle second = f.Registry.Start("s1");
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        (await second.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Registry.IsActive("s1").Should().BeFalse();
        f.LogsWithEvent("CallbackFailed").Should().HaveCount(2);
        f.Ended.Should().HaveCount(2).And.OnlyContain(e => !e.StillRegistered);
    }

    [Fact]
    public async Task RunEnded_OnRelease_RaisedSynchronouslyAfterEntryIsGoneAndBeforeCompletion()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        bool? activeInHandler = null;
        int? countInHandler = null;
        bool? completionDoneInHandler = null;
        f.Registry.RunEnded += (_, _) =>
        {
            activeInHandler = f.Registry.IsActive("s1");
            countInHandler = f.Registry.ActiveCount;
            completionDoneInHandler = run.Completion.IsCompleted;
        };

        run.Dispose();

        // Synchronous: the handler has run by the time Dispose returns.
        activeInHandler.Should().BeFalse();
        countInHandler.Should().Be(0);
        completionDoneInHandler.Should().BeFalse("RunEnded is raised before Completion completes");
        f.Ended.Should().ContainSingle().Which.StillRegistered.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task RunEnded_OnEviction_RaisedAfterEntryIsGone()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        bool? activeInHandler = null;
        f.Registry.RunEnded += (_, _) => activeInHandler = f.Registry.IsActive("s1");

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        activeInHandler.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.StillRegistered.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
    }

    [Fact]
    public async Task Completion_ContinuationRequestingSynchronousExecution_StillRunsOutsideDispose()
    {
        // Completion's continuations run asynchronously: host code awaiting it cannot run inside the registry's
        // release path (and so cannot re-enter it or block it).
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        var ranInsideDispose = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = run.Completion.ContinueWith(
            _ => ranInsideDispose.TrySetResult(_insideDispose),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        _insideDispose = true;
        try
        {
            run.Dispose();
        }
        finally
        {
            _insideDispose = false;
        }

        (await ranInsideDispose.Task.WaitAsync(TestTime.HangGuard)).Should().BeFalse();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------------------

    private static void CallWithSessionId(ActiveRunRegistry registry, string member, string sessionId)
    {
        switch (member)
        {
            case "Start": _ = registry.Start(sessionId); break;
            case "TryStart": _ = registry.TryStart(sessionId, out _); break;
            case "IsActive": _ = registry.IsActive(sessionId); break;
            case "TryGetRun": _ = registry.TryGetRun(sessionId, out _); break;
            case "TryAbort": _ = registry.TryAbort(sessionId); break;
            case "WaitForRunEndAsync": _ = registry.WaitForRunEndAsync(sessionId, WaitTimeout); break;
            case "RunAsync<T>": _ = registry.RunAsync(sessionId, _ => Task.FromResult(1)); break;
            case "RunAsync": _ = registry.RunAsync(sessionId, _ => Task.CompletedTask); break;
            default: throw new ArgumentOutOfRangeException(nameof(member), member, "Unknown member.");
        }
    }

    private static void CallAfterDispose(ActiveRunRegistry registry, string member)
    {
        switch (member)
        {
            case "ActiveCount": _ = registry.ActiveCount; break;
            case "AbandonedCount": _ = registry.AbandonedCount; break;
            case "GetActiveRuns": _ = registry.GetActiveRuns(); break;
            case "GetAbandonedRuns": _ = registry.GetAbandonedRuns(); break;
            case "DrainAsync": _ = registry.DrainAsync(WaitTimeout); break;
            default: CallWithSessionId(registry, member, "s2"); break;
        }
    }

    private static (RunStartOptions Options, string OptionName) InvalidOverride(string kind, RunSupervisorOptions registryOptions, bool supersede) => kind switch
    {
        "Timeout zero" => (new RunStartOptions { Timeout = TimeSpan.Zero, WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "Timeout negative" => (new RunStartOptions { Timeout = TimeSpan.FromSeconds(-1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "Timeout above MaxRunDuration" => (new RunStartOptions { Timeout = registryOptions.MaxRunDuration + TimeSpan.FromTicks(1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "GracePeriod negative" => (new RunStartOptions { GracePeriod = TimeSpan.FromTicks(-1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.GracePeriod"),
        "GracePeriod above 24 days" => (new RunStartOptions { GracePeriod = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.GracePeriod"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind."),
    };
}
