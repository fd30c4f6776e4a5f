using FluentAssertions;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary>The watchdog measures its own lateness, warns when it is late, and never gives a late run extra grace.</summary>
public sealed class WatchdogLatenessTests
{
    [Fact]
    public void Tick_OnTime_RecordsZeroLatenessAndNoWarning()
    {
        using var f = new RegistryFixture();
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        f.Registry.Start("s").Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(RegistryFixture.Grace);

        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(0, 0);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.Zero);
        f.LogsWithEvent("WatchdogLate").Should().BeEmpty();
    }

    [Fact]
    public void Tick_LateBeyondTheThreshold_WarnsRecordsAndStillEvictsAtTheFixedInstantsTerms()
    {
        using var f = new RegistryFixture();
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle run = f.Registry.Start("s");
        run.Attach(new TaskCompletionSource().Task);

        // One jump past deadline and eviction instant, as a paused process or a starved pool would wake.
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace + TimeSpan.FromSeconds(2.4));

        run.Status.Should().Be(RunStatus.Evicted, "the eviction instant was fixed at the deadline: a late tick gives no extra grace");
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(32.4, 2.4);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(32.4));
        f.LogsWithEvent("WatchdogLate").Should().ContainSingle().Which.Message.Should().Contain("00:00:32.4").And.Contain("thread pool starved or process paused");
    }

    [Fact]
    public void WatchdogLateness_NextTickOnTime_BackToZero()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("a").Dispose();
        f.Registry.Start("late");
        f.Time.Advance(RegistryFixture.Timeout + TimeSpan.FromSeconds(5));
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(5));

        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromSeconds(5));

        f.Registry.WatchdogLateness.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void WatchdogLatenessThreshold_Configured_WarnsOnlyBeyondIt()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions
        {
            RunTimeout = RegistryFixture.Timeout,
            GracePeriod = RegistryFixture.Grace,
            WatchdogLatenessThreshold = TimeSpan.FromSeconds(10),
        });
        f.Registry.WatchdogLatenessThreshold.Should().Be(TimeSpan.FromSeconds(10));
        f.Registry.Start("s");

        f.Time.Advance(RegistryFixture.Timeout + TimeSpan.FromSeconds(9));

        f.LogsWithEvent("WatchdogLate").Should().BeEmpty();
    }

    [Fact]
    public void WatchdogLateness_ExactlyAtTheThreshold_NoWarningButOneTickOverWarns()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions
        {
            RunTimeout = RegistryFixture.Timeout,
            GracePeriod = RegistryFixture.Grace,
            WatchdogLatenessThreshold = TimeSpan.FromSeconds(10),
        });
        f.Registry.Start("at");
        f.Registry.Start("over", new RunStartOptions { Timeout = RegistryFixture.Timeout + TimeSpan.FromSeconds(20) });

        // The threshold is the most lateness tolerated: only lateness beyond it is a warning.
        f.Time.Advance(RegistryFixture.Timeout + TimeSpan.FromSeconds(10));
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(10));
        f.LogsWithEvent("WatchdogLate").Should().BeEmpty();

        f.Time.Advance(TimeSpan.FromSeconds(20) + TestTime.Tick);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(10) + TestTime.Tick);
        f.LogsWithEvent("WatchdogLate").Should().ContainSingle();
    }

    [Fact]
    public void WatchdogLateness_LaterTickWithNothingDue_KeepsTheLastMeasuredLateness()
    {
        using var f = new RegistryFixture();
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle run = f.Registry.Start("s");
        f.Time.Advance(RegistryFixture.Timeout + TimeSpan.FromSeconds(5));
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(5));

        // The run settles during its grace period; the watchdog still wakes at the eviction instant and finds nothing.
        run.Dispose();
        f.Time.Advance(RegistryFixture.Grace);

        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(5), "a tick that handled nothing measured no lateness");
        lateness.GetMeasurementSnapshot().Should().ContainSingle();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Constructor_WatchdogLatenessThresholdNotPositive_FailsValidationNamingIt(int seconds)
    {
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { WatchdogLatenessThreshold = TimeSpan.FromSeconds(seconds) }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*WatchdogLatenessThreshold*");
    }

    [Fact]
    public void Watchdog_SystemClock_RunsOnADedicatedThreadAndAFakeClockOnItsTimer()
    {
        using var system = new ActiveRunRegistry();
        using var f = new RegistryFixture();

        system.WatchdogHasDedicatedThread.Should().BeTrue();
        f.Registry.WatchdogHasDedicatedThread.Should().BeFalse();
    }
}
