using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>
/// The instruments of the meter <see cref="MeterName"/>. Each registry owns one meter instance so that
/// registries (and tests) never see each other's measurements through <c>MetricCollector</c>; listeners that
/// subscribe by meter name see them all.
/// </summary>
/// <remarks>
/// The registry records through the methods, never the instruments: a <see cref="MeterListener"/>'s callback runs on
/// the recording thread and its exception would otherwise escape from the middle of a transition's publishing (a run's
/// end not raised, its waiters never admitted, its caller never completed). The methods skip an instrument nobody
/// listens to before building its tags, and log a listener's failure instead of throwing it.
/// </remarks>
internal sealed class RunSupervisorMetrics : IDisposable
{
    public const string MeterName = "RunSupervisor";
    public const string EndReasonTag = "runsupervisor.end_reason";
    public const string LaneTag = "runsupervisor.lane";
    public const string QueueOutcomeTag = "runsupervisor.queue_outcome";
    public const string LeaseCauseTag = "runsupervisor.lease_cause";
    public const string LeaseOperationTag = "runsupervisor.lease_operation";

    private readonly Meter _meter;
    private readonly Action<string, Exception> _listenerFailed;

    public RunSupervisorMetrics(ILogger logger)
    {
        _listenerFailed = (instrument, ex) => logger.MeterListenerFailed(instrument, ex);
        _meter = new Meter(MeterName, typeof(RunSupervisorMetrics).Assembly.GetName().Version?.ToString());
        ActiveRuns = _meter.CreateUpDownCounter<long>("runsupervisor.runs.active", "{run}", "Runs currently in the registry.");
        RunsStarted = _meter.CreateCounter<long>("runsupervisor.runs.started", "{run}", "Runs started.");
        RunsEnded = _meter.CreateCounter<long>("runsupervisor.runs.ended", "{run}", "Runs that left the registry, tagged by end reason.");
        Evictions = _meter.CreateCounter<long>("runsupervisor.runs.evicted", "{run}", "Runs force-evicted because they did not settle within the grace period.");
        AbandonedRuns = _meter.CreateUpDownCounter<long>("runsupervisor.runs.abandoned", "{run}", "Runs in the abandoned ledger: out of the registry, provider not settled.");
        HeartbeatsDropped = _meter.CreateCounter<long>("runsupervisor.heartbeats.dropped", "{heartbeat}", "Heartbeat ticks dropped by the queue policy.");
        RunDuration = _meter.CreateHistogram<double>("runsupervisor.run.duration", "s", "How long runs stayed in the registry, tagged by end reason.");
        WatchdogLateness = _meter.CreateHistogram<double>("runsupervisor.watchdog.lateness", "s", "How long after its due instant each abort and eviction was handled by the watchdog.");
        QueueLength = _meter.CreateUpDownCounter<long>("runsupervisor.queue.length", "{start}", "Starts waiting for admission, tagged by lane.");
        QueueWait = _meter.CreateHistogram<double>("runsupervisor.queue.wait", "s", "How long each waiting start waited, tagged by lane and outcome (admitted, timed_out, cancelled, queue_full, disposed).");
        RunsPreempted = _meter.CreateCounter<long>("runsupervisor.runs.preempted", "{run}", "Background runs superseded by a foreground start on their session.");
        LeasesAcquired = _meter.CreateCounter<long>("runsupervisor.leases.acquired", "{lease}", "Run leases taken from the lease store.");
        LeasesLost = _meter.CreateCounter<long>("runsupervisor.leases.lost", "{lease}", "Runs that lost their lease, tagged by cause (expired, missing, taken_over, superseded).");
        LeaseStoreFailures = _meter.CreateCounter<long>("runsupervisor.leases.store_failures", "{call}", "Lease store calls that failed or timed out, tagged by operation.");
        UnfencedStarts = _meter.CreateCounter<long>("runsupervisor.leases.unfenced_starts", "{run}", "Runs started without a lease because the store was unreachable (FailOpen).");
        RenewBatchDuration = _meter.CreateHistogram<double>("runsupervisor.leases.renew_duration", "s", "How long each batched renew of this host's leases took.");
    }

    public Counter<long> LeasesAcquired { get; }

    public Counter<long> LeasesLost { get; }

    public Counter<long> LeaseStoreFailures { get; }

    public Counter<long> UnfencedStarts { get; }

    public Histogram<double> RenewBatchDuration { get; }
    /// <summary>Gets the registry's meter, on which adapter packages create their own instruments, so those live as long as the registry.</summary>
    public Meter Meter => _meter;

    public UpDownCounter<long> ActiveRuns { get; }

    public Counter<long> RunsStarted { get; }

    public Counter<long> RunsEnded { get; }

    public Counter<long> Evictions { get; }

    public UpDownCounter<long> AbandonedRuns { get; }

    public Counter<long> HeartbeatsDropped { get; }

    public Histogram<double> RunDuration { get; }

    public Histogram<double> WatchdogLateness { get; }

    public UpDownCounter<long> QueueLength { get; }

    public Histogram<double> QueueWait { get; }

    public Counter<long> RunsPreempted { get; }

    public void RecordStarted()
    {
        Measure(RunsStarted, 1L, static (c, v) => c.Add(v));
        Measure(ActiveRuns, 1L, static (c, v) => c.Add(v));
    }

    public void RecordEnded(RunEndReason reason, TimeSpan duration)
    {
        Measure(ActiveRuns, -1L, static (c, v) => c.Add(v));
        Measure(RunsEnded, reason, static (c, r) => c.Add(1, EndReasonTagOf(r)));
        Measure(RunDuration, (reason, duration), static (h, x) => h.Record(x.duration.TotalSeconds, EndReasonTagOf(x.reason)));
        if (reason == RunEndReason.ForceEvicted)
        {
            Measure(Evictions, 1L, static (c, v) => c.Add(v));
        }
    }

    public void RecordPreempted() => Measure(RunsPreempted, 1L, static (c, v) => c.Add(v));

    public void RecordAbandoned(long delta) => Measure(AbandonedRuns, delta, static (c, v) => c.Add(v));

    public void RecordHeartbeatDropped() => Measure(HeartbeatsDropped, 1L, static (c, v) => c.Add(v));

    public void RecordWatchdogLateness(TimeSpan lateness) => Measure(WatchdogLateness, lateness, static (h, x) => h.Record(x.TotalSeconds));

    public void RecordQueued(string lane) => Measure(QueueLength, lane, static (c, l) => c.Add(1, new KeyValuePair<string, object?>(LaneTag, l)));

    public void RecordLeftQueue(string lane, TimeSpan waited, string outcome)
    {
        Measure(QueueLength, lane, static (c, l) => c.Add(-1, new KeyValuePair<string, object?>(LaneTag, l)));
        Measure(
            QueueWait,
            (lane, waited, outcome),
            static (h, x) => h.Record(x.waited.TotalSeconds, new KeyValuePair<string, object?>(LaneTag, x.lane), new KeyValuePair<string, object?>(QueueOutcomeTag, x.outcome)));
    }

    public void RecordLeaseAcquired() => Measure(LeasesAcquired, 1L, static (c, v) => c.Add(v));

    public void RecordLeaseLost(string cause) => Measure(LeasesLost, cause, static (c, x) => c.Add(1, new KeyValuePair<string, object?>(LeaseCauseTag, x)));

    public void RecordLeaseStoreFailure(string operation) => Measure(LeaseStoreFailures, operation, static (c, x) => c.Add(1, new KeyValuePair<string, object?>(LeaseOperationTag, x)));

    public void RecordUnfencedStart() => Measure(UnfencedStarts, 1L, static (c, v) => c.Add(v));

    public void RecordRenewBatch(TimeSpan duration) => Measure(RenewBatchDuration, duration, static (h, x) => h.Record(x.TotalSeconds));

    public void Dispose() => _meter.Dispose();

    private static KeyValuePair<string, object?> EndReasonTagOf(RunEndReason reason) => new(EndReasonTag, EndReasonNames.Get(reason));

    /// <summary>Records on <paramref name="instrument"/> if anyone listens; a listener's exception is logged, never thrown.</summary>
    private void Measure<TInstrument, TState>(TInstrument instrument, TState state, Action<TInstrument, TState> record)
        where TInstrument : Instrument
        => GuardedInstruments.Measure(instrument, state, record, _listenerFailed);

    /// <summary>The snake_case value of the <see cref="EndReasonTag"/> tag; the run activity uses the same values.</summary>
    public static string GetEndReasonName(RunEndReason reason) => EndReasonNames.Get(reason);

    /// <summary>OpenTelemetry-style tag values (snake_case), constant so recording does not allocate.</summary>
    private static class EndReasonNames
    {
        public static string Get(RunEndReason reason) => reason switch
        {
            RunEndReason.Completed => "completed",
            RunEndReason.Faulted => "faulted",
            RunEndReason.Aborted => "aborted",
            RunEndReason.TimedOut => "timed_out",
            RunEndReason.Superseded => "superseded",
            RunEndReason.ForceEvicted => "force_evicted",
            RunEndReason.Stalled => "stalled",
            RunEndReason.LeaseLost => "lease_lost",
            _ => "unknown",
        };
    }
}
