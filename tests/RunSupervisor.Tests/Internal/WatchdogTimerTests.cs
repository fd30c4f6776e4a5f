using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The watchdog's timer driven directly on a scripted clock: it only ever moves a wake-up earlier, arms for the time
/// left from the clock's reading, re-arms when the clock moved while it was arming, clamps what a system timer cannot
/// express, and never re-arms once disposed.
/// </summary>
public sealed class WatchdogTimerTests
{
    // What ITimer accepts at most; a later instant is reached in several hops.
    private static readonly TimeSpan LongestDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    [Fact]
    public void Constructor_CallersFlowNotSuppressed_CreatesTheTimerWithoutItAndRestoresTheFlow()
    {
        var time = new ScriptedTime();

        using var watchdog = new WatchdogTimer(new RegistryClock(time), static _ => { }, new object());

        time.FlowSuppressedAtCreation.Should().BeTrue("the timer must not capture the ambient state of whichever run created it");
        ExecutionContext.IsFlowSuppressed().Should().BeFalse("the creator's own flow is left as it was");
    }

    [Fact]
    public void Constructor_CallersFlowAlreadySuppressed_LeavesItSuppressed()
    {
        var time = new ScriptedTime();
        using AsyncFlowControl suppressed = ExecutionContext.SuppressFlow();

        using var watchdog = new WatchdogTimer(new RegistryClock(time), static _ => { }, new object());

        time.FlowSuppressedAtCreation.Should().BeTrue();
        ExecutionContext.IsFlowSuppressed().Should().BeTrue("only a suppression the constructor made itself is undone");
    }

    [Fact]
    public async Task RealTime_Constructor_SystemClock_TicksOnANamedBackgroundThreadOfItsOwn()
    {
        var clock = new RegistryClock(TimeProvider.System);
        var ticked = new TaskCompletionSource<(string? Name, bool IsBackground, bool IsPool)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var watchdog = new WatchdogTimer(
            clock,
            static s => ((TaskCompletionSource<(string?, bool, bool)>)s!).TrySetResult(
                (Thread.CurrentThread.Name, Thread.CurrentThread.IsBackground, Thread.CurrentThread.IsThreadPoolThread)),
            ticked);

        watchdog.IsDedicatedThread.Should().BeTrue();
        watchdog.ScheduleNoLaterThan(clock.NowTicks());

        (string? name, bool isBackground, bool isPool) = await ticked.Task.WaitAsync(TestTime.HangGuard);
        name.Should().Be("RunSupervisor watchdog", "a hung process's thread dump must show which thread is the watchdog");
        isBackground.Should().BeTrue("the watchdog never keeps the process alive");
        isPool.Should().BeFalse("hung providers starve the pool, not this thread");
    }

    [Fact]
    public void Constructor_ProviderOtherThanTheSystemClock_UsesTheProvidersTimer()
    {
        var time = new ScriptedTime();

        using var watchdog = new WatchdogTimer(new RegistryClock(time), static _ => { }, new object());

        watchdog.IsDedicatedThread.Should().BeFalse();
        time.Timer.Should().NotBeNull();
    }

    [Fact]
    public void ScheduleNoLaterThan_InstantAhead_ArmsForTheTimeLeftAndRecordsTheInstant()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            time.Elapse(TimeSpan.FromSeconds(10));
            long due = clock.NowTicks() + TimeSpan.FromSeconds(5).Ticks;

            watchdog.ScheduleNoLaterThan(due);

            time.Timer!.Changes.Should().Equal(TimeSpan.FromSeconds(5));
            watchdog.BeginTick().Should().Be(due);
            watchdog.BeginTick().Should().Be(long.MaxValue, "the first tick consumed the wake-up");
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_InstantAlreadyPassed_ArmsToFireAtOnce()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            time.Elapse(TimeSpan.FromSeconds(10));

            watchdog.ScheduleNoLaterThan(clock.NowTicks() - TimeSpan.FromSeconds(1).Ticks);

            time.Timer!.Changes.Should().Equal(TimeSpan.Zero);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_SameOrLaterThanTheArmedWakeUp_NeitherReadsTheClockNorReArms()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long due = clock.NowTicks() + TimeSpan.FromSeconds(5).Ticks;
            watchdog.ScheduleNoLaterThan(due);
            int reads = time.Reads;

            // The fast path skips the clock: a provider may run due timer callbacks inside a read.
            watchdog.ScheduleNoLaterThan(due);
            watchdog.ScheduleNoLaterThan(due + 1);
            watchdog.ScheduleNoLaterThan(long.MaxValue);

            time.Reads.Should().Be(reads);
            time.Timer!.Changes.Should().ContainSingle();
            watchdog.BeginTick().Should().Be(due);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_NothingArmed_NoInstantArmsNothing()
    {
        (ScriptedTime time, _, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            watchdog.ScheduleNoLaterThan(long.MaxValue);

            time.Timer!.Changes.Should().BeEmpty();
            watchdog.BeginTick().Should().Be(long.MaxValue);
        }
    }

    [Theory]
    [InlineData(-1000.0, 1.0)]
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 1.0)]
    [InlineData(5.0, 5.0)]
    public void ScheduleNoLaterThan_MinimumDelay_WaitsAtLeastAMillisecond(double dueInMilliseconds, double armedMilliseconds)
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            time.Elapse(TimeSpan.FromSeconds(10));

            watchdog.ScheduleNoLaterThan(clock.NowTicks() + TimeSpan.FromMilliseconds(dueInMilliseconds).Ticks, minimumDelay: true);

            time.Timer!.Changes.Should().Equal(TimeSpan.FromMilliseconds(armedMilliseconds));
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_BeyondTheLongestTimerDelay_ArmsTheLongestDelayAndRecordsThatInstant()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            time.Elapse(TimeSpan.FromHours(1));
            long now = clock.NowTicks();

            watchdog.ScheduleNoLaterThan(now + TimeSpan.FromDays(100).Ticks);

            time.Timer!.Changes.Should().Equal(LongestDelay);
            watchdog.BeginTick().Should().Be(now + LongestDelay.Ticks, "the first hop wakes the watchdog, which then arms the next");
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_BeyondTheLongestTimerDelayAgain_KeepsTheFirstHop()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long now = clock.NowTicks();
            watchdog.ScheduleNoLaterThan(now + TimeSpan.FromDays(100).Ticks);

            watchdog.ScheduleNoLaterThan(now + TimeSpan.FromDays(60).Ticks);

            time.Timer!.Changes.Should().Equal(LongestDelay);
            watchdog.BeginTick().Should().Be(now + LongestDelay.Ticks);
        }
    }

    [Theory]
    [InlineData(0, new[] { 100.0 })]
    [InlineData(500, new[] { 100.0 })]
    [InlineData(1000, new[] { 100.0, 99.0, 98.0, 97.0 })]
    [InlineData(2000, new[] { 100.0, 98.0, 96.0, 94.0 })]
    public void ScheduleNoLaterThan_ClockMovesWhileArming_ReArmsForWhatIsLeftAtMostThreeTimes(int microsecondsPerRead, double[] armedMilliseconds)
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long due = clock.NowTicks() + TimeSpan.FromMilliseconds(100).Ticks;

            // Each reading finds the clock moved on since the previous one, as when another thread advances it.
            time.StepPerRead = TimeSpan.FromMicroseconds(microsecondsPerRead);
            watchdog.ScheduleNoLaterThan(due);

            time.Timer!.Changes.Should().Equal(armedMilliseconds.Select(ms => TimeSpan.FromMilliseconds(ms)));
            watchdog.BeginTick().Should().Be(due, "re-arming keeps the instant; only the delay to it shrinks");
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_MinimumDelayWhileTheClockMoves_ReArmsNoSoonerThanAMillisecond()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long due = clock.NowTicks() + TimeSpan.FromMilliseconds(3).Ticks;
            time.StepPerRead = TimeSpan.FromMilliseconds(2);

            watchdog.ScheduleNoLaterThan(due, minimumDelay: true);

            // 3 ms left, then 1 ms; then the instant has passed, but the floor keeps it at 1 ms, which is no change.
            time.Timer!.Changes.Should().Equal(TimeSpan.FromMilliseconds(3), TimeSpan.FromMilliseconds(1));
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_EarlierWakeUpArmedWhileReadingTheClock_KeepsTheEarlierOne()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long now = clock.NowTicks();
            long earlier = now + TimeSpan.FromSeconds(5).Ticks;

            // As when a provider runs the tick inside a read, or another thread arms between the read and the lock.
            time.OnRead = () => watchdog.ScheduleNoLaterThan(earlier);
            watchdog.ScheduleNoLaterThan(now + TimeSpan.FromSeconds(10).Ticks);

            time.Timer!.Changes.Should().Equal(TimeSpan.FromSeconds(5));
            watchdog.BeginTick().Should().Be(earlier);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_SameWakeUpArmedWhileReadingTheClock_ArmsOnce()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long due = clock.NowTicks() + TimeSpan.FromSeconds(5).Ticks;

            time.OnRead = () => watchdog.ScheduleNoLaterThan(due);
            watchdog.ScheduleNoLaterThan(due);

            time.Timer!.Changes.Should().ContainSingle();
            watchdog.BeginTick().Should().Be(due);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_TickRanInsideChange_DoesNotReArmOverIt()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long due = clock.NowTicks() + TimeSpan.FromMilliseconds(100).Ticks;
            time.StepPerRead = TimeSpan.FromMilliseconds(2);

            // A provider that fires synchronously inside Change: the tick consumed the wake-up before the drift check.
            long consumed = 0;
            time.Timer!.OnChange = () => consumed = watchdog.BeginTick();
            watchdog.ScheduleNoLaterThan(due);

            consumed.Should().Be(due);
            time.Timer.Changes.Should().Equal(TimeSpan.FromMilliseconds(100));
            watchdog.BeginTick().Should().Be(long.MaxValue);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_TickRanInsideChangeAndArmedAnotherInstant_TheNewerInstantWins()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        using (watchdog)
        {
            long now = clock.NowTicks();
            long first = now + TimeSpan.FromMilliseconds(100).Ticks;
            long next = now + TimeSpan.FromSeconds(5).Ticks;
            time.Timer!.OnChange = () =>
            {
                _ = watchdog.BeginTick();
                watchdog.ScheduleNoLaterThan(next);
            };

            watchdog.ScheduleNoLaterThan(first);

            time.Timer.Changes.Should().Equal(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
            watchdog.BeginTick().Should().Be(next);
        }
    }

    [Fact]
    public void ScheduleNoLaterThan_DisposedInsideChange_StopsReArming()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        long due = clock.NowTicks() + TimeSpan.FromMilliseconds(100).Ticks;
        time.StepPerRead = TimeSpan.FromMilliseconds(2);
        time.Timer!.OnChange = watchdog.Dispose;

        watchdog.ScheduleNoLaterThan(due);

        time.Timer.Changes.Should().ContainSingle();
        time.Timer.ChangesAfterDispose.Should().Be(0);
    }

    [Fact]
    public void ScheduleNoLaterThan_TickInFlightWhenDisposed_DoesNotReArm()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        long due = clock.NowTicks() + TimeSpan.FromSeconds(5).Ticks;

        watchdog.Dispose();

        // A tick that had already started when the registry was disposed still consumes and re-arms.
        _ = watchdog.BeginTick();
        watchdog.ScheduleNoLaterThan(due);

        time.Timer!.Disposed.Should().BeTrue();
        time.Timer.Changes.Should().BeEmpty();
    }

    [Fact]
    public void ScheduleNoLaterThan_AfterDispose_ArmsNothing()
    {
        (ScriptedTime time, RegistryClock clock, WatchdogTimer watchdog) = Create();
        watchdog.Dispose();

        watchdog.ScheduleNoLaterThan(clock.NowTicks());

        time.Timer!.Changes.Should().BeEmpty();
    }

    private static (ScriptedTime Time, RegistryClock Clock, WatchdogTimer Watchdog) Create()
    {
        var time = new ScriptedTime();
        var clock = new RegistryClock(time);
        return (time, clock, new WatchdogTimer(clock, static _ => { }, new object()));
    }

    /// <summary>
    /// A clock that moves only by hand or by a fixed step on every reading, with hooks into a reading, and a timer that
    /// records every Change instead of firing.
    /// </summary>
    private sealed class ScriptedTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        /// <summary>Gets or sets how far the clock moves after each reading.</summary>
        public TimeSpan StepPerRead { get; set; }

        /// <summary>Gets or sets an action run once, inside the next reading, before it returns.</summary>
        public Action? OnRead { get; set; }

        public int Reads { get; private set; }

        public bool FlowSuppressedAtCreation { get; private set; }

        public RecordingTimer? Timer { get; private set; }

        public void Elapse(TimeSpan span) => _ticks += span.Ticks;

        public override long GetTimestamp()
        {
            Reads++;
            Action? onRead = OnRead;
            OnRead = null;
            onRead?.Invoke();
            long now = _ticks;
            _ticks += StepPerRead.Ticks;
            return now;
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            FlowSuppressedAtCreation = ExecutionContext.IsFlowSuppressed();
            Timer = new RecordingTimer();
            return Timer;
        }
    }

    private sealed class RecordingTimer : ITimer
    {
        public List<TimeSpan> Changes { get; } = [];

        /// <summary>Gets or sets an action run once, inside the next Change, as a provider that fires synchronously would.</summary>
        public Action? OnChange { get; set; }

        public bool Disposed { get; private set; }

        public int ChangesAfterDispose { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Changes.Add(dueTime);
            if (Disposed)
            {
                ChangesAfterDispose++;
            }

            Action? onChange = OnChange;
            OnChange = null;
            onChange?.Invoke();
            return !Disposed;
        }

        public void Dispose() => Disposed = true;

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
