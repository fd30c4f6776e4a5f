using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="RunHandle.TryExtendDeadline(TimeSpan)"/>: only later, only while running and current, never past
/// StartedAt + MaxRunDuration.
/// </summary>
public sealed class RunHandleDeadlineTests
{
    private const string Session = "s1";

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

    [Fact]
    public void TryExtendDeadline_AsTheTickPastTheEvictionInstantReadsTheClock_RefusedAndTheRunIsEvicted()
    {
        var clock = new ReadHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace }, clock);
        RunHandle run = registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);
        bool? extended = null;

        // The tick reads the clock at deadline + grace; the provider asks for more time before the tick takes the lock.
        clock.OnRead(1, () => extended = run.TryExtendDeadline(TimeSpan.FromMinutes(5)));
        clock.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        clock.HookRan.Should().BeTrue();
        extended.Should().BeFalse("the deadline had passed when the extension was asked for");
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public void TryExtendDeadline_DeadlinePassedButTheWatchdogHasNotActed_RefusedAndTheDeadlineStays()
    {
        var clock = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace }, clock);
        RunHandle run = registry.Start(Session);
        DateTimeOffset deadline = run.Deadline;

        clock.Elapse(RegistryFixture.Timeout + TimeSpan.FromSeconds(1));

        run.TryExtendDeadline(TimeSpan.FromMinutes(5)).Should().BeFalse("a late watchdog must not let a run buy time after the fact");
        run.Deadline.Should().Be(deadline);
    }
}
