using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The admission, preemption and watchdog instruments (<c>runsupervisor.queue.length</c>, <c>runsupervisor.queue.wait</c>,
/// <c>runsupervisor.runs.preempted</c>, <c>runsupervisor.watchdog.lateness</c>) and the <c>stalled</c> end reason, each
/// read after a scenario on fake time, so every value is exact.
/// </summary>
public sealed class AdmissionMetricsTests
{
    private const string LaneTag = "runsupervisor.lane";
    private const string OutcomeTag = "runsupervisor.queue_outcome";
    private const string EndReasonTag = "runsupervisor.end_reason";
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait };
    private static readonly RunStartOptions Cron = new() { Lane = "cron" };
    private static readonly RunStartOptions Background = new() { Background = true };
    private static readonly TimeSpan QueueTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task QueueLength_StartsWaitingInTwoLanes_CountedPerLaneAndBackToZeroWhenAdmitted()
    {
        using var f = Create();
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);
        RunHandle busy = f.Registry.Start("s1");
        RunHandle cronRun = f.Registry.Start("c1", Cron);

        ValueTask<RunHandle> first = f.Registry.StartAsync("s1", Wait);
        ValueTask<RunHandle> second = f.Registry.StartAsync("s1", Wait);
        ValueTask<RunHandle> cron = f.Registry.StartAsync("c2", Cron);

        LaneSum(length, "default").Should().Be(2, "two starts wait for session s1 in the default lane");
        LaneSum(length, "cron").Should().Be(1, "one start waits for a cron slot");
        length.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(f.Registry.GetQueuedCount("s1") + f.Registry.GetQueuedCount("c2"));

        busy.Dispose();
        LaneSum(length, "default").Should().Be(1, "the release admitted the first waiter in the same step");
        (await first).Dispose();
        cronRun.Dispose();

        LaneSum(length, "default").Should().Be(0);
        LaneSum(length, "cron").Should().Be(0);
        length.GetMeasurementSnapshot().Should().OnlyContain(m => m.Tags.Count == 1 && (m.Value == 1 || m.Value == -1));
        (await second).Dispose();
        (await cron).Dispose();
    }

    [Fact]
    public async Task QueueWait_StartAdmittedAfterSevenSeconds_RecordsSevenSecondsTaggedAdmitted()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        RunHandle busy = f.Registry.Start("s1");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait);

        f.Time.Advance(TimeSpan.FromSeconds(7));
        wait.GetMeasurementSnapshot().Should().BeEmpty("a wait is recorded when it ends, not while it lasts");
        busy.Dispose();

        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(7);
        measurement.Tags.Should().Equal(Tags("default", "admitted"));
        (await waiting).Dispose();
    }

    [Fact]
    public async Task QueueWait_StartBehindAZombie_AdmittedAtTheEvictionInstantRecordsTimeoutPlusGrace()
    {
        using var f = Create(o => o.QueueTimeout = TimeSpan.FromHours(1));
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        f.Registry.Start("s1").Attach(new TaskCompletionSource().Task);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        waiting.IsCompletedSuccessfully.Should().BeTrue("the eviction frees the session and admits the waiter in the same step");
        wait.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(630);
        (await waiting).Dispose();
    }

    [Fact]
    public async Task QueueWait_LaneSlotFreedAfterThreeSeconds_TaggedWithTheLane()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        RunHandle cronRun = f.Registry.Start("c1", Cron);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("c2", Cron);

        f.Time.Advance(TimeSpan.FromSeconds(3));
        cronRun.Dispose();

        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(3);
        measurement.Tags.Should().Equal(Tags("cron", "admitted"));
        (await waiting).Dispose();
    }

    [Fact]
    public async Task QueueWait_GlobalCapWait_TaggedWithTheDefaultLane()
    {
        using var f = Create(o => o.MaxActiveRuns = 1);
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        RunHandle other = f.Registry.Start("a");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("b");

        f.Time.Advance(TimeSpan.FromSeconds(1.5));
        other.Dispose();

        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(1.5);
        measurement.Tags.Should().Equal(Tags("default", "admitted"));
        (await waiting).Dispose();
    }

    [Fact]
    public async Task QueueWait_QueueTimeoutElapses_RecordsTheTimeoutTaggedTimedOut()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);
        using RunHandle busy = f.Registry.Start("s1");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait);

        f.Time.Advance(QueueTimeout);

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<RunQueueTimeoutException>();
        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(QueueTimeout.TotalSeconds);
        measurement.Tags.Should().Equal(Tags("default", "timed_out"));
        length.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, -1);
    }

    [Fact]
    public async Task QueueWait_CallerCancelsAfterFourSeconds_RecordsFourSecondsTaggedCancelled()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using RunHandle busy = f.Registry.Start("s1");
        using var cts = new CancellationTokenSource();
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait, cts.Token);

        f.Time.Advance(TimeSpan.FromSeconds(4));
        await cts.CancelAsync();

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<OperationCanceledException>();
        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(4);
        measurement.Tags.Should().Equal(Tags("default", "cancelled"));
    }

    [Fact]
    public async Task QueueWait_DrainCancelsTheWaitingStart_TaggedCancelled()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        RunHandle busy = f.Registry.Start("s1");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait);
        f.Time.Advance(TimeSpan.FromSeconds(2));

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { CancelWaiting = true });

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<OperationCanceledException>();
        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(2);
        measurement.Tags.Should().Equal(Tags("default", "cancelled"));
        busy.Dispose();
        (await drain.WaitAsync(TestTime.HangGuard)).CancelledStarts.Should().Equal("s1");
    }

    [Fact]
    public async Task QueueWait_OldestPushedOutByCancelOldest_RecordsItsWaitTaggedQueueFull()
    {
        using var f = Create(o =>
        {
            o.MaxQueuedPerSession = 1;
            o.QueueOverflow = QueueOverflowBehavior.CancelOldest;
        });
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);
        RunHandle busy = f.Registry.Start("s1");
        ValueTask<RunHandle> oldest = f.Registry.StartAsync("s1", Wait);
        f.Time.Advance(TimeSpan.FromSeconds(2));

        ValueTask<RunHandle> newest = f.Registry.StartAsync("s1", Wait);

        await FluentActions.Awaiting(async () => await oldest).Should().ThrowAsync<RunQueueFullException>();
        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(2);
        measurement.Tags.Should().Equal(Tags("default", "queue_full"));
        length.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(1, "the newest start took the oldest's place");
        busy.Dispose();
        (await newest).Dispose();
    }

    [Fact]
    public async Task QueueWaitAndLength_NewestRejectedByRejectNewest_RecordNothingForTheStartThatNeverQueued()
    {
        using var f = Create(o => o.MaxQueuedPerSession = 1);
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);
        RunHandle busy = f.Registry.Start("s1");
        ValueTask<RunHandle> queued = f.Registry.StartAsync("s1", Wait);

        ValueTask<RunHandle> rejected = f.Registry.StartAsync("s1", Wait);

        await FluentActions.Awaiting(async () => await rejected).Should().ThrowAsync<RunQueueFullException>();
        wait.GetMeasurementSnapshot().Should().BeEmpty();
        length.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
        busy.Dispose();
        (await queued).Dispose();
    }

    [Fact]
    public async Task QueueWait_RegistryDisposedWhileWaiting_RecordsTheWaitTaggedDisposed()
    {
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);
        f.Registry.Start("s1");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", Wait);
        f.Time.Advance(TimeSpan.FromSeconds(5));

        f.Registry.Dispose();

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<ObjectDisposedException>();
        CollectedMeasurement<double> measurement = wait.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        measurement.Value.Should().Be(5);
        measurement.Tags.Should().Equal(Tags("default", "disposed"));
        length.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(0, "the disposal recorded the leave before the meter went away");
    }

    [Fact]
    public async Task QueueWaitAndLength_StartAdmittedAtOnce_RecordNothing()
    {
        // Only starts that waited are measured: an idle session's start never counts as a zero-second wait.
        using var f = Create();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);
        using var length = new MetricCollector<long>(f.Registry.Metrics.QueueLength);

        (await f.Registry.StartAsync("s1", Wait)).Dispose();
        (await f.Registry.StartAsync("c1", Cron)).Dispose();

        wait.GetMeasurementSnapshot().Should().BeEmpty();
        length.GetMeasurementSnapshot().Should().BeEmpty();
    }

    [Fact]
    public async Task RunsPreempted_ForegroundStartOnABackgroundRun_CountsOneAndEndsItSuperseded()
    {
        using var f = Create();
        using var preempted = new MetricCollector<long>(f.Registry.Metrics.RunsPreempted);
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        RunHandle heartbeat = f.Registry.Start("s1", Background);

        using RunHandle user = await f.Registry.StartAsync("s1", Wait);

        preempted.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(1);
        preempted.GetMeasurementSnapshot().Single().Tags.Should().BeEmpty();
        ended.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [EndReasonTag] = "superseded" });
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public void RunsPreempted_SupersedesThatAreNotPreemptions_NotCounted()
    {
        using var f = Create();
        using var preempted = new MetricCollector<long>(f.Registry.Metrics.RunsPreempted);
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        var supersede = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede };

        // A foreground run superseded by a foreground start, a background one by a background start, and a background
        // start refused by a foreground run: none is a foreground start taking a background run's place.
        f.Registry.Start("a");
        using RunHandle a = f.Registry.Start("a", supersede);
        f.Registry.Start("b", Background);
        using RunHandle b = f.Registry.Start("b", new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Supersede });
        f.Registry.TryStart("a", out _, Background).Should().BeFalse();

        preempted.GetMeasurementSnapshot().Should().BeEmpty();
        ended.GetMeasurementSnapshot().Should().HaveCount(2).And.OnlyContain(m => (string?)m.Tags[EndReasonTag] == "superseded");
    }

    [Fact]
    public async Task RunsEndedAndDuration_StalledRunSettlesWithinGrace_TaggedStalledWithTheIdleInstant()
    {
        using var f = Create(o => o.IdleTimeout = Idle);
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        using var duration = new MetricCollector<double>(f.Registry.Metrics.RunDuration);
        using var evicted = new MetricCollector<long>(f.Registry.Metrics.Evictions);
        RunHandle run = f.Registry.Start("s1");

        f.Time.Advance(TimeSpan.FromSeconds(10));
        run.ReportProgress();
        f.Time.Advance(Idle);
        run.Status.Should().Be(RunStatus.Aborting, "no progress for the idle timeout since the report at 10 s");
        f.Time.Advance(TimeSpan.FromSeconds(5));
        run.Dispose();

        (await run.Completion).Should().Be(RunEndReason.Stalled);
        var stalled = new Dictionary<string, object?> { [EndReasonTag] = "stalled" };
        CollectedMeasurement<long> end = ended.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        end.Value.Should().Be(1);
        end.Tags.Should().Equal(stalled);
        CollectedMeasurement<double> took = duration.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        took.Value.Should().Be(45, "10 s to the report, 30 s idle, 5 s of grace used");
        took.Tags.Should().Equal(stalled);
        evicted.GetMeasurementSnapshot().Should().BeEmpty();
    }

    [Fact]
    public void RunsEnded_StalledRunNeverSettles_TaggedForceEvicted()
    {
        using var f = Create(o => o.IdleTimeout = Idle);
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        using var evicted = new MetricCollector<long>(f.Registry.Metrics.Evictions);
        f.Registry.Start("s1").Attach(new TaskCompletionSource().Task);

        f.Time.Advance(Idle + RegistryFixture.Grace);

        ended.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags[EndReasonTag].Should().Be("force_evicted");
        evicted.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
    }

    [Fact]
    public void WatchdogLateness_OnTimeAbortsAndEvictions_OneZeroPerAbortAndPerEvictionAndNothingElse()
    {
        using var f = Create(o => o.QueueTimeout = TimeSpan.FromMinutes(5));
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle released = f.Registry.Start("released");
        f.Registry.Start("zombie").Attach(new TaskCompletionSource().Task);
        RunHandle settles = f.Registry.Start("settles-in-grace");
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("zombie", Wait);

        f.Time.Advance(TimeSpan.FromMinutes(1));
        released.Dispose();
        f.Time.Advance(TimeSpan.FromMinutes(4));
        waiting.IsFaulted.Should().BeTrue("the queue timeout is the watchdog's work too, but neither an abort nor an eviction");
        lateness.GetMeasurementSnapshot().Should().BeEmpty();
        f.Time.Advance(TimeSpan.FromMinutes(5));
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(0, 0);
        settles.Dispose();
        f.Time.Advance(RegistryFixture.Grace);

        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(new double[] { 0, 0, 0 }, "two aborts and one eviction");
        lateness.GetMeasurementSnapshot().Should().OnlyContain(m => m.Tags.Count == 0);
        waiting.AsTask().Exception.Should().NotBeNull();
    }

    [Fact]
    public void WatchdogLateness_StalledRunAbortedAndEvictedOneSecondLate_RecordsOneSecondForEach()
    {
        using var f = Create(o => o.IdleTimeout = Idle);
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle run = f.Registry.Start("s1");
        run.Attach(new TaskCompletionSource().Task);

        // Each step overshoots its instant by a second, as a paused process would.
        f.Time.Advance(Idle + TimeSpan.FromSeconds(1));
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
        f.Time.Advance(RegistryFixture.Grace);

        run.Status.Should().Be(RunStatus.Evicted, "evicted at the idle instant + grace, fixed when the abort happened");
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void WatchdogLateness_IdleAbortHandledLateAfterProgress_MeasuredFromTheIdleInstantTheProgressSet()
    {
        // Progress at 20 s moves the idle instant from 30 s to 50 s; the watchdog, paused, looks only at 60 s. The run
        // is aborted as of 50 s (its eviction instant is 50 s + grace), so the abort was 10 s late, not 30 s.
        using var f = Create(o => o.IdleTimeout = Idle);
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle run = f.Registry.Start("s1");
        run.Attach(new TaskCompletionSource().Task);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        run.ReportProgress();

        f.Time.Advance(TimeSpan.FromSeconds(40));

        run.Status.Should().Be(RunStatus.Aborting);
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(10);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(10));
        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromSeconds(10));
        run.Status.Should().Be(RunStatus.Evicted, "the eviction instant is the idle instant the progress set, plus grace");
    }

    [Fact]
    public void WatchdogLateness_DeadlineAbortHandledLateWithAStaleIdleCheck_MeasuredFromTheDeadline()
    {
        // A 60 s run with a 50 s idle timeout reports progress at 40 s, which moves its idle instant to 90 s, past the
        // deadline; the watchdog, paused, looks only at 70 s. The run is aborted for its deadline, 60 s (its eviction
        // instant is 60 s + grace): the abort was 10 s late, not 20 s (the stale idle check it was armed for, 50 s).
        using var f = Create(o =>
        {
            o.RunTimeout = TimeSpan.FromSeconds(60);
            o.IdleTimeout = TimeSpan.FromSeconds(50);
        });
        using var lateness = new MetricCollector<double>(f.Registry.Metrics.WatchdogLateness);
        RunHandle run = f.Registry.Start("s1");
        run.Attach(new TaskCompletionSource().Task);
        f.Time.Advance(TimeSpan.FromSeconds(40));
        run.ReportProgress();

        f.Time.Advance(TimeSpan.FromSeconds(30));

        run.Status.Should().Be(RunStatus.Aborting);
        lateness.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(10);
        f.Registry.WatchdogLateness.Should().Be(TimeSpan.FromSeconds(10));
        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromSeconds(10));
        run.Status.Should().Be(RunStatus.Evicted, "the eviction instant is the deadline plus grace");
    }

    private static RegistryFixture Create(Action<RunSupervisorOptions>? configure = null)
    {
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, QueueTimeout = QueueTimeout };
        options.Lanes["cron"] = 1;
        configure?.Invoke(options);
        return new RegistryFixture(options);
    }

    private static long LaneSum(MetricCollector<long> length, string lane)
        => length.GetMeasurementSnapshot().Where(m => Equals(m.Tags[LaneTag], lane)).Sum(m => m.Value);

    private static Dictionary<string, object?> Tags(string lane, string outcome) => new() { [LaneTag] = lane, [OutcomeTag] = outcome };
}
