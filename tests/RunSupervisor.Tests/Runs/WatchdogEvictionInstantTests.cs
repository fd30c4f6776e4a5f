using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// The eviction instant is fixed when the abort happens: a late watchdog tick, a deadline extension or an explicit
/// abort never gives a run more grace than one grace period. Time is the fixture's <see cref="FakeTimeProvider"/>.
/// </summary>
public sealed class WatchdogEvictionInstantTests
{
    private const string Session = "s1";

    private static TimeSpan Timeout => RegistryFixture.Timeout;

    private static TimeSpan Grace => RegistryFixture.Grace;

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

    private static TimeSpan Parse(string value) => TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
}
