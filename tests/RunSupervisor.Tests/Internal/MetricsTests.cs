using System.Diagnostics.Metrics;
using System.Reflection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RunSupervisor.Metrics;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The instruments of the meter "RunSupervisor", read with <see cref="MetricCollector{T}"/> built
/// on the registry's own instrument objects (each registry owns its meter, so parallel tests never cross-talk).
/// <see cref="Instruments"/> is the list every instrument the core creates must be in: the values of the admission,
/// preemption, watchdog and stall instruments are pinned in <see cref="AdmissionMetricsTests"/>, the lease ones in
/// <see cref="LeaseMetricsTests"/>.
/// </summary>
public sealed class MetricsTests
{
    private const string EndReasonTag = "runsupervisor.end_reason";

    public static TheoryData<string, string, Type> Instruments() => new()
    {
        { "runsupervisor.runs.active", "{run}", typeof(UpDownCounter<long>) },
        { "runsupervisor.runs.started", "{run}", typeof(Counter<long>) },
        { "runsupervisor.runs.ended", "{run}", typeof(Counter<long>) },
        { "runsupervisor.runs.evicted", "{run}", typeof(Counter<long>) },
        { "runsupervisor.runs.abandoned", "{run}", typeof(UpDownCounter<long>) },
        { "runsupervisor.heartbeats.dropped", "{heartbeat}", typeof(Counter<long>) },
        { "runsupervisor.run.duration", "s", typeof(Histogram<double>) },
        { "runsupervisor.watchdog.lateness", "s", typeof(Histogram<double>) },
        { "runsupervisor.queue.length", "{start}", typeof(UpDownCounter<long>) },
        { "runsupervisor.queue.wait", "s", typeof(Histogram<double>) },
        { "runsupervisor.runs.preempted", "{run}", typeof(Counter<long>) },
        { "runsupervisor.leases.acquired", "{lease}", typeof(Counter<long>) },
        { "runsupervisor.leases.lost", "{lease}", typeof(Counter<long>) },
        { "runsupervisor.leases.store_failures", "{call}", typeof(Counter<long>) },
        { "runsupervisor.leases.unfenced_starts", "{run}", typeof(Counter<long>) },
        { "runsupervisor.leases.renew_duration", "s", typeof(Histogram<double>) },
    };

    /// <summary>Every end reason and its tag value; <see cref="EndReasons"/> are the ones <see cref="RegistryFixture.EndRun"/> can produce.</summary>
    public static TheoryData<RunEndReason, string> AllEndReasonNames() => new()
    {
        { RunEndReason.Completed, "completed" },
        { RunEndReason.Faulted, "faulted" },
        { RunEndReason.Aborted, "aborted" },
        { RunEndReason.TimedOut, "timed_out" },
        { RunEndReason.Superseded, "superseded" },
        { RunEndReason.ForceEvicted, "force_evicted" },
        { RunEndReason.Stalled, "stalled" },
        { RunEndReason.LeaseLost, "lease_lost" },
    };

    public static TheoryData<RunEndReason, string> EndReasons() => new()
    {
        { RunEndReason.Completed, "completed" },
        { RunEndReason.Faulted, "faulted" },
        { RunEndReason.Aborted, "aborted" },
        { RunEndReason.TimedOut, "timed_out" },
        { RunEndReason.Superseded, "superseded" },
        { RunEndReason.ForceEvicted, "force_evicted" },
    };

    [Theory]
    [MemberData(nameof(Instruments))]
    public void Instrument_OnRunSupervisorMeter_HasNameUnitAndKind(string name, string unit, Type kind)
    {
        using var f = new RegistryFixture();
        Instrument instrument = AllInstruments(f.Registry).Should().ContainSingle(i => i.Name == name).Subject;

        instrument.Meter.Name.Should().Be("RunSupervisor");
        instrument.Unit.Should().Be(unit);
        instrument.Should().BeOfType(kind);
        instrument.Description.Should().NotBeNullOrWhiteSpace();
        instrument.Tags.Should().BeNullOrEmpty("tags are per measurement, never fixed on the instrument");
    }

    [Fact]
    public void Meter_EveryInstrumentTheRegistryCreates_IsInTheInstrumentList()
    {
        // Seen from the outside, as an exporter sees them: every instrument published on this registry's meter. A new
        // instrument fails here until it has its row in Instruments (and a test of its values beside the others).
        using var f = new RegistryFixture();
        var published = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, f.Registry.Metrics.Meter))
                {
                    lock (published)
                    {
                        published.Add(instrument);
                    }
                }
            },
        };

        listener.Start();

        string[] pinned = [.. Instruments().Select(row => (string)row[0])];
        pinned.Should().OnlyHaveUniqueItems();
        lock (published)
        {
            published.Select(i => i.Name).Should().BeEquivalentTo(pinned);
        }

        AllInstruments(f.Registry).Select(i => i.Name).Should().BeEquivalentTo(pinned, "every instrument property is one of the published instruments");
    }

    [Fact]
    public void EndReasonTag_EveryRunEndReason_HasItsSnakeCaseName()
    {
        // A new end reason fails here until it has its tag value (and "unknown" is never one).
        TheoryData<RunEndReason, string> rows = AllEndReasonNames();

        rows.Select(row => (RunEndReason)row[0]).Should().BeEquivalentTo(Enum.GetValues<RunEndReason>());
        foreach (object[] row in rows)
        {
            RunSupervisorMetrics.GetEndReasonName((RunEndReason)row[0]).Should().Be((string)row[1]);
        }
    }

    [Fact]
    public void Meter_EachRegistry_OwnsItsInstruments()
    {
        // Two registries side by side: a collector on one registry's instrument sees only that registry.
        using var a = new RegistryFixture();
        using var b = new RegistryFixture();
        using var startedA = new MetricCollector<long>(a.Registry.Metrics.RunsStarted);

        b.Registry.Start("s1").Dispose();
        a.Registry.Start("s1").Dispose();
        a.Registry.Start("s2").Dispose();

        startedA.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(2);
        AllInstruments(a.Registry).Should().OnlyContain(i => i.Meter == a.Registry.Metrics.RunsStarted.Meter);
        a.Registry.Metrics.RunsStarted.Meter.Should().NotBeSameAs(b.Registry.Metrics.RunsStarted.Meter);
    }

    [Fact]
    public void ActiveRuns_StartsAndReleases_GoesUpAndDown()
    {
        using var f = new RegistryFixture();
        using var active = new MetricCollector<long>(f.Registry.Metrics.ActiveRuns);

        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        a.Dispose();
        a.Dispose(); // stale: must not count down twice

        active.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1, -1);
        active.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(f.Registry.ActiveCount);

        b.Dispose();
        active.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(0);
    }

    [Fact]
    public void RunsStarted_OnlyRunsThatStarted_Counted()
    {
        using var f = new RegistryFixture();
        using var started = new MetricCollector<long>(f.Registry.Metrics.RunsStarted);
        using var active = new MetricCollector<long>(f.Registry.Metrics.ActiveRuns);

        using RunHandle first = f.Registry.Start("s1");
        f.Registry.TryStart("s1", out _).Should().BeFalse();
        FluentActions.Invoking(() => f.Registry.Start("s1")).Should().Throw<SessionBusyException>();
        using RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        started.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);

        // The supersede both started one run and ended one: the session still has exactly one active run.
        active.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(1);
    }

    [Theory]
    [MemberData(nameof(EndReasons))]
    public async Task RunsEndedAndDuration_EachReason_TaggedWithSnakeCaseReason(RunEndReason reason, string tag)
    {
        using var f = new RegistryFixture();
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        using var duration = new MetricCollector<double>(f.Registry.Metrics.RunDuration);
        using var evicted = new MetricCollector<long>(f.Registry.Metrics.Evictions);
        RunHandle run = f.Registry.Start("s1");

        f.EndRun(run, reason);

        (await run.Completion.WaitAsync(TimeSpan.FromSeconds(10))).Should().Be(reason);
        CollectedMeasurement<long> end = ended.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        end.Value.Should().Be(1);
        end.Tags.Should().Equal(new Dictionary<string, object?> { [EndReasonTag] = tag });
        duration.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [EndReasonTag] = tag });
        evicted.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(reason == RunEndReason.ForceEvicted ? 1 : 0);
    }

    [Fact]
    public void RunDuration_Released_RecordsFakeElapsedSeconds()
    {
        using var f = new RegistryFixture();
        using var duration = new MetricCollector<double>(f.Registry.Metrics.RunDuration);
        RunHandle run = f.Registry.Start("s1");

        f.Time.Advance(TimeSpan.FromMilliseconds(42_250));
        run.Dispose();

        duration.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(42.25);
    }

    [Fact]
    public void RunDuration_ForceEvicted_RecordsTimeoutPlusGraceInSeconds()
    {
        using var f = new RegistryFixture();
        using var duration = new MetricCollector<double>(f.Registry.Metrics.RunDuration);
        f.Registry.Start("s1");

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        duration.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(630);
    }

    [Fact]
    public void Evictions_TwoZombiesAndOneReleasedRun_CountsOnlyTheZombies()
    {
        using var f = new RegistryFixture();
        using var evicted = new MetricCollector<long>(f.Registry.Metrics.Evictions);
        f.Registry.Start("zombie-1");
        f.Registry.Start("zombie-2");
        RunHandle timedOut = f.Registry.Start("released-in-grace");

        f.Time.Advance(RegistryFixture.Timeout);
        timedOut.Dispose();
        f.Time.Advance(RegistryFixture.Grace);

        evicted.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);
    }

    [Fact]
    public void AbandonedRuns_EvictedWithPendingTask_UpThenDownWhenTheTaskSettles()
    {
        using var f = new RegistryFixture();
        using var abandoned = new MetricCollector<long>(f.Registry.Metrics.AbandonedRuns);
        var provider = new TaskCompletionSource();
        RunHandle run = f.Registry.Start("s1");
        run.Attach(provider.Task);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        abandoned.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);

        provider.SetException(new InvalidOperationException("late"));

        abandoned.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, -1);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public void AbandonedRuns_EvictedWithoutTaskThenReleasedLate_UpThenDown()
    {
        // Without an attached task the owner's late Dispose is the only sign the zombie finally returned.
        using var f = new RegistryFixture();
        using var abandoned = new MetricCollector<long>(f.Registry.Metrics.AbandonedRuns);
        RunHandle run = f.Registry.Start("s1");
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        run.Dispose();
        run.Dispose();

        abandoned.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, -1);
    }

    [Fact]
    public void AbandonedRuns_SupersededWithPendingTask_CountedUp()
    {
        using var f = new RegistryFixture();
        using var abandoned = new MetricCollector<long>(f.Registry.Metrics.AbandonedRuns);
        var provider = new TaskCompletionSource();
        f.Registry.Start("s1").Attach(provider.Task);

        using RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        abandoned.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
        provider.SetResult();
        abandoned.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(0);
    }

    [Fact]
    public void AbandonedRuns_LedgerFull_ForgettingTheOldestKeepsTheGaugeAtTheCap()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, MaxAbandonedRuns = 2 });
        using var abandoned = new MetricCollector<long>(f.Registry.Metrics.AbandonedRuns);
        f.Registry.Start("a");
        f.Registry.Start("b");
        f.Registry.Start("c");

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        abandoned.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(2);
        f.Registry.AbandonedCount.Should().Be(2);
    }

    [Fact]
    public void HeartbeatsDropped_EachDrop_CountsOneAndNothingElseCounts()
    {
        using var p = new PolicyFixture();
        using var dropped = new MetricCollector<long>(p.Registry.Metrics.HeartbeatsDropped);
        p.Heartbeat("s1"); // idle: runs, not counted
        using RunHandle run = p.Registry.Start("s1");

        p.DropHeartbeats("s1", 3);
        p.Policy.Resolve(new QueueRequest("s1", IsHeartbeat: false)); // a message is enqueued, not dropped

        dropped.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1, 1);
    }

    [Fact]
    public async Task MeterListener_ThrowsOnEveryMeasurement_EvictionHandOffAndEndsStillHappenAndTheFailuresAreLogged()
    {
        // A listener's callback runs on the recording thread, in the middle of publishing a transition: had its exception
        // escaped, the evicted run's end would not be raised, its waiter never admitted, the policy never told.
        using var f = new RegistryFixture();
        using MeterListener listener = ThrowingMeterListener.Start(f.Registry.Metrics.Meter);

        RunHandle hung = f.Registry.Start("s1");
        hung.Attach(new TaskCompletionSource().Task);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromHours(1) });

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        RunHandle next = await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        next.Dispose();

        f.Ended.Select(e => e.Args.Reason).Should().Equal(RunEndReason.ForceEvicted, RunEndReason.Completed);
        hung.Completion.IsCompleted.Should().BeTrue();
        next.Completion.IsCompletedSuccessfully.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeFalse();
        f.Registry.AbandonedCount.Should().Be(1);
        f.LogsWithEvent("MeterListenerFailed").Select(r => r.StructuredState!.Single(kv => kv.Key == "Instrument").Value).Should().Contain(
            ["runsupervisor.runs.started", "runsupervisor.runs.active", "runsupervisor.runs.ended", "runsupervisor.run.duration", "runsupervisor.runs.evicted",
             "runsupervisor.runs.abandoned", "runsupervisor.watchdog.lateness", "runsupervisor.queue.length", "runsupervisor.queue.wait"]);
    }

    /// <summary>Every instrument property of the registry's metrics, found by reflection so that none is left out.</summary>
    private static Instrument[] AllInstruments(ActiveRunRegistry registry)
        => [.. typeof(RunSupervisorMetrics).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => typeof(Instrument).IsAssignableFrom(p.PropertyType))
            .Select(p => (Instrument)p.GetValue(registry.Metrics)!)];
}
