using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary>The idle timeout: a run that stops reporting progress is aborted like a timeout and ends <see cref="RunEndReason.Stalled"/>.</summary>
public sealed class IdleTimeoutTests
{
    private const string Session = "s1";
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);

    private static RegistryFixture WithIdleTimeout() => new(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, IdleTimeout = Idle });

    [Fact]
    public async Task Watchdog_NoProgressForTheIdleTimeout_AbortsAndASettleWithinGraceEndsStalled()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session);

        f.Time.Advance(Idle - TimeSpan.FromTicks(1));
        run.Status.Should().Be(RunStatus.Running);
        f.Time.Advance(TimeSpan.FromTicks(1));

        run.Status.Should().Be(RunStatus.Aborting);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Deadline.Should().Be(run.StartedAt + RegistryFixture.Timeout, "an idle abort does not touch the deadline");
        f.LogsWithEvent("RunStalled").Should().ContainSingle();
        run.Dispose();
        (await run.Completion).Should().Be(RunEndReason.Stalled);
        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Be("no progress for 00:00:30");
    }

    [Fact]
    public void Watchdog_ProgressThenSilence_StallsOneIdleTimeoutAfterTheLastReport()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session);

        f.Time.Advance(TimeSpan.FromSeconds(20));
        run.ReportProgress();
        run.LastProgressAt.Should().Be(f.Time.GetUtcNow());
        f.Time.Advance(TimeSpan.FromSeconds(29));
        run.Status.Should().Be(RunStatus.Running, "the idle clock restarted at the report");
        f.Time.Advance(TimeSpan.FromSeconds(1));

        run.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public async Task Watchdog_ProgressEveryTenSeconds_StillTimesOutAtTheDeadline()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session);
        DateTimeOffset deadline = run.Deadline;

        while (f.Time.GetUtcNow() < deadline)
        {
            run.Status.Should().Be(RunStatus.Running);
            f.Time.Advance(TimeSpan.FromSeconds(10));
            run.ReportProgress();
        }

        run.Status.Should().Be(RunStatus.Aborting, "progress never moves the deadline");
        run.Deadline.Should().Be(deadline);
        run.Dispose();
        (await run.Completion).Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task Watchdog_StalledRunNeverSettles_ForceEvictedOneGracePeriodAfterTheIdleInstant()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(Idle + RegistryFixture.Grace - TimeSpan.FromTicks(1));
        run.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(TimeSpan.FromTicks(1));

        (await run.Completion).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Contain("no progress for 00:00:30");
    }

    [Fact]
    public async Task RunAsync_ProviderHonoursTheIdleAbort_ThrowsRunTimedOutExceptionWithReasonStalled()
    {
        using var f = WithIdleTimeout();
        var providerStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        Task call = f.Registry.RunAsync(Session, async token => { providerStarted.SetResult(); await Task.Delay(Timeout.Infinite, token); });
        await providerStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        f.Time.Advance(Idle);

        RunTimedOutException error = (await FluentActions.Awaiting(() => call.WaitAsync(TimeSpan.FromSeconds(30))).Should().ThrowAsync<RunTimedOutException>()).Which;
        error.Reason.Should().Be(RunEndReason.Stalled);
        error.Timeout.Should().Be(Idle);
        error.Message.Should().Contain("no progress for 00:00:30");
    }

    [Fact]
    public void TryExtendDeadline_IdleTimeoutLongerThanTheOldDeadline_StallsAtTheIdleInstant()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session, new RunStartOptions { Timeout = TimeSpan.FromSeconds(10) });
        run.TryExtendDeadline(TimeSpan.FromMinutes(1)).Should().BeTrue();

        f.Time.Advance(TimeSpan.FromSeconds(10));
        run.Status.Should().Be(RunStatus.Running, "the deadline moved and the run is not idle yet");
        f.Time.Advance(Idle - TimeSpan.FromSeconds(10) - TimeSpan.FromTicks(1));
        run.Status.Should().Be(RunStatus.Running);
        f.Time.Advance(TimeSpan.FromTicks(1));

        run.Status.Should().Be(RunStatus.Aborting, "the idle timeout still holds after the deadline moved");
        f.LogsWithEvent("RunStalled").Should().ContainSingle();
    }

    [Fact]
    public void TryExtendDeadline_ProgressKeepsComing_RunsUntilTheNewDeadline()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session, new RunStartOptions { Timeout = TimeSpan.FromSeconds(10) });
        run.TryExtendDeadline(TimeSpan.FromMinutes(1)).Should().BeTrue();

        for (int second = 5; second < 70; second += 5)
        {
            f.Time.Advance(TimeSpan.FromSeconds(5));
            run.Status.Should().Be(RunStatus.Running, "at {0} s the run has progress and the new deadline is ahead", second);
            run.ReportProgress();
        }

        f.Time.Advance(TimeSpan.FromSeconds(5));
        run.Status.Should().Be(RunStatus.Aborting);
        f.LogsWithEvent("RunTimedOut").Should().ContainSingle();
    }

    [Fact]
    public void Start_InfinitePerStartIdleTimeout_TurnsTheRegistrysOff()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session, new RunStartOptions { IdleTimeout = Timeout.InfiniteTimeSpan });

        f.Time.Advance(Idle * 3);

        run.Status.Should().Be(RunStatus.Running);
    }

    [Fact]
    public void Start_PerStartIdleTimeout_OverridesTheRegistrys()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session, new RunStartOptions { IdleTimeout = TimeSpan.FromSeconds(5) });

        f.Time.Advance(TimeSpan.FromSeconds(5));

        run.Status.Should().Be(RunStatus.Aborting);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Start_NonPositiveIdleTimeout_ThrowsArgumentOutOfRangeNamingIt(int seconds)
    {
        using var f = new RegistryFixture();

        FluentActions.Invoking(() => f.Registry.Start(Session, new RunStartOptions { IdleTimeout = TimeSpan.FromSeconds(seconds) }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RunStartOptions.IdleTimeout*");
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { IdleTimeout = TimeSpan.FromSeconds(seconds) }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*IdleTimeout*");
    }

    [Fact]
    public void ReportProgress_AfterTheRunEnded_ChangesNothing()
    {
        using var f = WithIdleTimeout();
        RunHandle run = f.Registry.Start(Session);
        run.Dispose();

        FluentActions.Invoking(run.ReportProgress).Should().NotThrow();
        f.Time.Advance(Idle * 2);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task IdleTimeout_LateTickFindsTheIdleInstantAndALaterDeadlinePassed_EndsStalledAndEvictsOneGraceAfterTheIdleInstant()
    {
        // Idle from 30 s, deadline at 40 s; the tick armed for 30 s comes at 45 s (a starved watchdog, or one clock step).
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = TimeSpan.FromSeconds(40), GracePeriod = RegistryFixture.Grace, IdleTimeout = Idle });
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(TimeSpan.FromSeconds(45));

        run.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(Idle + RegistryFixture.Grace - TimeSpan.FromSeconds(45));
        f.Registry.IsActive(Session).Should().BeFalse("an on-time watchdog evicts at the idle instant + grace: a late tick never adds to it");
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Contain("no progress for 00:00:30", "the run stalled before its deadline came");
    }

    [Fact]
    public async Task IdleTimeout_LateTickFindsTheIdleInstantAfterTheDeadline_EndsTimedOut()
    {
        // Progress at 20 s moves the idle instant to 50 s, past the 40 s deadline; the tick comes at 55 s.
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = TimeSpan.FromSeconds(40), GracePeriod = RegistryFixture.Grace, IdleTimeout = Idle });
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        run.ReportProgress();

        f.Time.Advance(TimeSpan.FromSeconds(35));
        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.TimedOut, "the deadline came first");
    }
}
