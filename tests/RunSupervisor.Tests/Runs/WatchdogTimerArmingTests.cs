using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// How the watchdog re-arms its timer after a tick: exactly for the next due instant after an on-time tick, never
/// sooner than a millisecond after a timer that fired early (a system timer rounds to milliseconds), and not at all
/// for a tick that arrives once disposal has begun. The timer here fires only when the test says so, and records
/// every delay it is armed with.
/// </summary>
public sealed class WatchdogTimerArmingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan HalfMillisecond = TimeSpan.FromTicks(TimeSpan.TicksPerMillisecond / 2);

    [Fact]
    public void Tick_FiredBeforeTheInstantItWasArmedFor_RearmsNoSoonerThanAMillisecond()
    {
        var clock = new ManualTimerClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace }, clock);
        RunHandle run = registry.Start("s");
        clock.Timer.LastDelay.Should().Be(Timeout);

        // Half a millisecond early, as a millisecond-resolution timer may fire.
        clock.Elapse(Timeout - HalfMillisecond);
        clock.Timer.Fire();

        run.Status.Should().Be(RunStatus.Running);
        clock.Timer.LastDelay.Should().Be(TimeSpan.FromMilliseconds(1), "re-arming for less would spin until the due instant");
    }

    [Fact]
    public void Tick_FiredOnTime_RearmsForExactlyTheNextDueInstantEvenWithinAMillisecond()
    {
        var clock = new ManualTimerClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace }, clock);
        RunHandle first = registry.Start("first");
        clock.Elapse(HalfMillisecond);
        RunHandle second = registry.Start("second");

        clock.Elapse(Timeout - HalfMillisecond);
        clock.Timer.Fire();

        first.Status.Should().Be(RunStatus.Aborting);
        second.Status.Should().Be(RunStatus.Running);
        clock.Timer.LastDelay.Should().Be(HalfMillisecond, "a timer that fired on time is trusted to the tick: the next deadline is not delayed");
    }

    [Fact]
    public void Dispose_TickFiringWhileDisposalIsUnderway_AbortsNothing()
    {
        var clock = new ManualTimerClock();
        var logs = new FakeLoggerProvider();
        using var loggerFactory = new LoggerFactory([logs]);
        var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace }, clock, loggerFactory);
        RunHandle run = registry.Start("s");
        var ended = new List<RunEndedEventArgs>();
        registry.RunEnded += (_, e) => ended.Add(e);
        clock.Elapse(Timeout);

        // The overdue run's tick arrives just as disposal stops the timer: disposal, not the deadline, ends the run.
        clock.Timer.OnDispose = clock.Timer.Fire;
        registry.Dispose();

        logs.Collector.GetSnapshot().Where(r => r.Id.Name == "RunTimedOut").Should().BeEmpty();
        ended.Should().ContainSingle().Which.RunId.Should().Be(run.RunId);
        ended[0].Detail.Should().NotContain("deadline");
    }

    /// <summary>A monotonic clock moved by hand, whose one timer fires only through <see cref="ManualTimer.Fire"/>.</summary>
    private sealed class ManualTimerClock : TimeProvider
    {
        private long _ticks;
        private ManualTimer? _timer;

        public ManualTimer Timer => _timer ?? throw new InvalidOperationException("No timer was created.");

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public override DateTimeOffset GetUtcNow() => new(DateTimeOffset.UnixEpoch.UtcTicks + GetTimestamp(), TimeSpan.Zero);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            // The registry's first timer is its watchdog; any later one (none in these tests) stays silent.
            var timer = new ManualTimer(callback, state);
            _timer ??= timer;
            return timer;
        }

        public void Elapse(TimeSpan span) => Interlocked.Add(ref _ticks, span.Ticks);
    }

    private sealed class ManualTimer(TimerCallback callback, object? state) : ITimer
    {
        private readonly List<TimeSpan> _delays = [];

        public Action? OnDispose { get; set; }

        public TimeSpan LastDelay
        {
            get
            {
                lock (_delays)
                {
                    return _delays[^1];
                }
            }
        }

        public void Fire() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (_delays)
            {
                _delays.Add(dueTime);
            }

            return true;
        }

        public void Dispose() => OnDispose?.Invoke();

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
