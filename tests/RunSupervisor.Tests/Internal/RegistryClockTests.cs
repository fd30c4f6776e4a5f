using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Internal;

/// <summary>The registry's clock: monotonic ticks from its origin, wall-clock instants from a cached offset, on the system tick with TimeProvider.System.</summary>
public sealed class RegistryClockTests
{
    [Fact]
    public void NowTicks_ClockElapses_CountsFromTheClocksCreation()
    {
        var time = new HandDrivenClock();
        time.Elapse(TimeSpan.FromHours(1));
        var clock = new RegistryClock(time);

        clock.NowTicks().Should().Be(0);
        time.Elapse(TimeSpan.FromSeconds(5));
        clock.NowTicks().Should().Be(TimeSpan.FromSeconds(5).Ticks);
    }

    [Fact]
    public void NowTicks_ProviderOtherThanTheSystemClock_IsExactToTheTick()
    {
        var time = new HandDrivenClock();
        var clock = new RegistryClock(time);
        time.Elapse(TimeSpan.FromTicks(12_345));

        clock.IsSystemTick.Should().BeFalse();
        clock.ResolutionTicks.Should().Be(0);
        clock.NowTicks().Should().Be(12_345, "a fake clock stays exact to the tick");
    }

    [Fact]
    public void RealTime_NowTicks_SystemClock_CountsTheSystemTickInWholeMilliseconds()
    {
        // Real time: the system tick's resolution is at most about 16 ms; the bound is generous for a loaded machine.
        var clock = new RegistryClock(TimeProvider.System);
        clock.IsSystemTick.Should().BeTrue();
        clock.ResolutionTicks.Should().Be(RegistryClock.SystemTickResolution.Ticks);
        long originTick = Environment.TickCount64;
        for (int i = 0; i < 5; i++)
        {
            long before = Environment.TickCount64;
            long now = clock.NowTicks();
            long after = Environment.TickCount64;

            now.Should().BeGreaterThanOrEqualTo(0, "it counts from the clock's own origin");
            (now % TimeSpan.TicksPerMillisecond).Should().Be(0, "the system tick counts milliseconds");
            (now / TimeSpan.TicksPerMillisecond).Should().BeInRange(before - originTick - 100, after - originTick + 100);
            Thread.Sleep(20);
        }
    }

    [Fact]
    public void Wait_SystemClock_RoundsUpToWholeMilliseconds()
    {
        var clock = new RegistryClock(TimeProvider.System);

        clock.Wait(1).Should().Be(TimeSpan.FromMilliseconds(1), "a wait below the tick's unit would spin until the tick moves");
        clock.Wait(TimeSpan.FromMilliseconds(2.5).Ticks).Should().Be(TimeSpan.FromMilliseconds(3));
        clock.Wait(TimeSpan.FromMilliseconds(2).Ticks).Should().Be(TimeSpan.FromMilliseconds(2));
        clock.Wait(0).Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void Wait_ProviderOtherThanTheSystemClock_IsExact()
    {
        var clock = new RegistryClock(new HandDrivenClock());

        clock.Wait(1).Should().Be(TimeSpan.FromTicks(1));
    }

    [Fact]
    public void ToWallClock_WallClockSteps_FollowsTheStepAfterTheRefreshInterval()
    {
        var time = new HandDrivenClock();
        var clock = new RegistryClock(time);
        DateTimeOffset start = clock.ToWallClock(clock.NowTicks());
        start.Should().Be(DateTimeOffset.UnixEpoch);

        time.StepWallClock(TimeSpan.FromHours(1));
        time.Elapse(RegistryClock.WallClockRefresh - TimeSpan.FromTicks(1));
        clock.ToWallClock(clock.NowTicks()).Should().Be(start + RegistryClock.WallClockRefresh - TimeSpan.FromTicks(1), "the offset is not read again within the interval");

        time.Elapse(TimeSpan.FromTicks(1));
        clock.ToWallClock(clock.NowTicks()).Should().Be(start + TimeSpan.FromHours(1) + RegistryClock.WallClockRefresh, "the interval passed, so the offset is read again");
    }

    [Fact]
    public void ToWallClockUtcTicksCached_AfterAStepNotYetRead_UsesTheOffsetLastRead()
    {
        var time = new HandDrivenClock();
        var clock = new RegistryClock(time);
        time.StepWallClock(TimeSpan.FromHours(1));
        time.Elapse(TimeSpan.FromSeconds(2));

        clock.ToWallClockUtcTicksCached(clock.NowTicks()).Should().Be(DateTimeOffset.UnixEpoch.UtcTicks + TimeSpan.FromSeconds(2).Ticks, "it never calls the time provider");
        _ = clock.ToWallClock(clock.NowTicks());
        clock.ToWallClockUtcTicksCached(clock.NowTicks()).Should().Be(DateTimeOffset.UnixEpoch.UtcTicks + TimeSpan.FromHours(1).Ticks + TimeSpan.FromSeconds(2).Ticks, "a read of the wall clock refreshed the offset");
    }

    [Fact]
    public void ToWallClock_AnotherCallerRefreshedTheOffsetFirst_AgreesWithTheOffsetItPublished()
    {
        var time = new ReentrantClock();
        var clock = new RegistryClock(time);
        time.Elapse(RegistryClock.WallClockRefresh);
        long now = clock.NowTicks();
        DateTimeOffset inner = default;

        // While this call reads the wall clock, another refreshes and publishes the offset first; then the wall clock
        // steps, so this call's own reading differs from the published one and loses the race to publish it.
        time.OnWallClockRead = () =>
        {
            inner = clock.ToWallClock(now);
            time.StepWallClock(TimeSpan.FromHours(1));
        };
        DateTimeOffset outer = clock.ToWallClock(now);

        inner.Should().Be(DateTimeOffset.UnixEpoch + RegistryClock.WallClockRefresh);
        outer.Should().Be(inner, "every caller converts with the one offset published, never a reading that lost the race");
        clock.ToWallClockUtcTicksCached(now).Should().Be(inner.UtcTicks);
    }

    /// <summary>A clock moved by hand whose wall-clock read can run an action first, as a provider running due timer callbacks would.</summary>
    private sealed class ReentrantClock : TimeProvider
    {
        private long _monotonicTicks;
        private long _wallOffsetTicks = DateTimeOffset.UnixEpoch.UtcTicks;

        /// <summary>Gets or sets an action run once, inside the next wall-clock read, before it reads.</summary>
        public Action? OnWallClockRead { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _monotonicTicks;

        public override DateTimeOffset GetUtcNow()
        {
            Action? onRead = OnWallClockRead;
            OnWallClockRead = null;
            onRead?.Invoke();
            return new DateTimeOffset(_monotonicTicks + _wallOffsetTicks, TimeSpan.Zero);
        }

        public void Elapse(TimeSpan span) => _monotonicTicks += span.Ticks;

        public void StepWallClock(TimeSpan step) => _wallOffsetTicks += step.Ticks;
    }
}
