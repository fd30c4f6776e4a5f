using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The lease instruments (<c>runsupervisor.leases.*</c>) and the <c>lease_lost</c> end reason, on simulated hosts that
/// share an <see cref="InMemoryRunLeaseStore"/> and a fake clock (TTL 15 s, renew every 5 s, safety margin 1 s).
/// </summary>
public sealed class LeaseMetricsTests
{
    private const string Session = "s1";
    private const string CauseTag = "runsupervisor.lease_cause";
    private const string OperationTag = "runsupervisor.lease_operation";
    private const string EndReasonTag = "runsupervisor.end_reason";

    [Fact]
    public async Task LeasesAcquired_EachLeasedStart_CountedOnItsHostOnly()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var acquiredA = new MetricCollector<long>(a.Registry.Metrics.LeasesAcquired);
        using var acquiredB = new MetricCollector<long>(b.Registry.Metrics.LeasesAcquired);

        using RunHandle first = await a.Registry.StartAsync("s1");
        using RunHandle second = await a.Registry.StartAsync("s2");
        await FluentActions.Awaiting(async () => await b.Registry.StartAsync("s1")).Should().ThrowAsync<SessionBusyException>();
        using RunHandle takenOver = await b.Registry.StartAsync("s2", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        acquiredA.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);
        acquiredA.GetMeasurementSnapshot().Should().OnlyContain(m => m.Tags.Count == 0);
        acquiredB.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal([1], "the refused start took no lease; the superseding one did");
    }

    [Fact]
    public async Task Metrics_StartRefusedBecauseAnotherHostHoldsTheSession_RecordsNothingOnTheRefusedHost()
    {
        // A start the store refuses never appears: no run started or ended, no lease, no queue; nothing at all.
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle owner = await a.Registry.StartAsync(Session);
        using var recorder = new MeterRecorder(b.Registry);

        await FluentActions.Awaiting(async () => await b.Registry.StartAsync(Session)).Should().ThrowAsync<SessionBusyException>();

        recorder.Measurements.Should().BeEmpty();
    }

    [Fact]
    public async Task LeasesLost_LeaseKeyGoneAtRenew_TaggedMissingAndTheRunEndsLeaseLost()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var lost = new MetricCollector<long>(a.Registry.Metrics.LeasesLost);
        using var ended = new MetricCollector<long>(a.Registry.Metrics.RunsEnded);
        using var duration = new MetricCollector<double>(a.Registry.Metrics.RunDuration);
        using var evicted = new MetricCollector<long>(a.Registry.Metrics.Evictions);
        RunHandle run = await a.Registry.StartAsync(Session);
        run.Attach(new TaskCompletionSource().Task);
        cluster.Store.RemoveLease(Session);

        cluster.Time.Advance(LeaseCluster.Renew);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        CollectedMeasurement<long> loss = lost.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        loss.Value.Should().Be(1);
        loss.Tags.Should().Equal(new Dictionary<string, object?> { [CauseTag] = "missing" });
        var leaseLost = new Dictionary<string, object?> { [EndReasonTag] = "lease_lost" };
        ended.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(leaseLost);
        CollectedMeasurement<double> took = duration.GetMeasurementSnapshot().Should().ContainSingle().Subject;
        took.Value.Should().Be(LeaseCluster.Renew.TotalSeconds, "ended at the renew that found the lease gone, without a grace period");
        took.Tags.Should().Equal(leaseLost);
        evicted.GetMeasurementSnapshot().Should().BeEmpty("a lost lease is not a force eviction");
    }

    [Fact]
    public async Task LeasesLost_LeaseTakenByAnotherHostAtRenew_TaggedTakenOver()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var lost = new MetricCollector<long>(a.Registry.Metrics.LeasesLost);
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.RemoveLease(Session);
        (await cluster.Store.AcquireAsync(new RunLeaseRequest(Session, "c", LeaseCluster.Ttl))).Lease.Should().NotBeNull();

        cluster.Time.Advance(LeaseCluster.Renew);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        lost.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [CauseTag] = "taken_over" });
    }

    [Fact]
    public async Task LeasesLost_StoreDownUntilTheLocalValidityEnds_TaggedExpiredAtTtlMinusMargin()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var lost = new MetricCollector<long>(a.Registry.Metrics.LeasesLost);
        using var duration = new MetricCollector<double>(a.Registry.Metrics.RunDuration);
        RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        cluster.Time.Advance(LeaseCluster.Ttl - LeaseCluster.Margin - AsyncTestHelpers.Tick);
        lost.GetMeasurementSnapshot().Should().BeEmpty("the lease is still trusted one tick before its local validity ends");
        cluster.Time.Advance(AsyncTestHelpers.Tick);

        (await run.Completion.Guard()).Should().Be(RunEndReason.LeaseLost);
        lost.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [CauseTag] = "expired" });
        duration.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be((LeaseCluster.Ttl - LeaseCluster.Margin).TotalSeconds);
    }

    [Fact]
    public async Task LeasesLost_AnotherHostSupersedes_TaggedSupersededAndTheRunEndsSuperseded()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using var lost = new MetricCollector<long>(a.Registry.Metrics.LeasesLost);
        using var ended = new MetricCollector<long>(a.Registry.Metrics.RunsEnded);
        RunHandle run = await a.Registry.StartAsync(Session);

        using RunHandle replacement = await b.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await run.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        lost.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [CauseTag] = "superseded" });
        ended.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags.Should().Equal(new Dictionary<string, object?> { [EndReasonTag] = "superseded" });
        a.Registry.GetLeaseHealth().LeasesLost.Should().Be(1, "the metric and the health snapshot count the same losses");
    }

    [Fact]
    public async Task LeaseStoreFailures_StoreDown_OneCountPerFailedCallTaggedWithItsOperation()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var failures = new MetricCollector<long>(a.Registry.Metrics.LeaseStoreFailures);
        using var started = new MetricCollector<long>(a.Registry.Metrics.RunsStarted);
        RunHandle running = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        await FluentActions.Awaiting(async () => await a.Registry.StartAsync("s2")).Should().ThrowAsync<RunLeaseUnavailableException>();
        cluster.Time.Advance(LeaseCluster.Renew);
        await FluentActions.Awaiting(async () => await a.Registry.GetSessionOwnerAsync("s3")).Should().ThrowAsync<RunLeaseUnavailableException>();
        await FluentActions.Awaiting(async () => await a.Registry.TryAbortAsync("s3", reason: "stop")).Should().ThrowAsync<RunLeaseUnavailableException>();
        running.Dispose();

        failures.GetMeasurementSnapshot().Should().OnlyContain(m => m.Value == 1 && m.Tags.Count == 1);

        // The start that failed closed leaves its session watched (whether it is idle is the store's to say), so the
        // watchdog's poll of it fails too, before the renew of the same tick.
        failures.GetMeasurementSnapshot().Select(m => m.Tags[OperationTag]).Should().Equal("acquire", "get_owner", "renew", "get_owner", "abort", "release");
        started.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal([1], "the start the store could not serve (FailClosed) never appeared");
    }

    [Fact]
    public async Task LeaseStoreFailures_FirstStartDuringAnOutage_CountsTheSubscriptionToo()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var failures = new MetricCollector<long>(a.Registry.Metrics.LeaseStoreFailures);
        cluster.Store.BeginOutage();

        await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();

        // The failed start's session is then watched, which tries the subscription again.
        failures.GetMeasurementSnapshot().Select(m => m.Tags[OperationTag]).Should().Equal("subscribe", "acquire", "subscribe");
    }

    [Fact]
    public async Task UnfencedStarts_FailOpenStartDuringAnOutage_CountedAndNoLeaseCounted()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a", o => o.Lease.OnStoreUnavailable = StoreUnavailableBehavior.FailOpen);
        using var unfenced = new MetricCollector<long>(a.Registry.Metrics.UnfencedStarts);
        using var acquired = new MetricCollector<long>(a.Registry.Metrics.LeasesAcquired);
        using var started = new MetricCollector<long>(a.Registry.Metrics.RunsStarted);
        using RunHandle fenced = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        using RunHandle run = await a.Registry.StartAsync("s2");

        run.FencingToken.Should().Be(run.RunId, "an unfenced run's token is its run id");
        unfenced.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
        unfenced.GetMeasurementSnapshot().Single().Tags.Should().BeEmpty();
        acquired.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal([1], "only the start before the outage took a lease");
        started.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1, 1);
        a.Registry.GetLeaseHealth().UnfencedStarts.Should().Be(1);
    }

    [Fact]
    public async Task UnfencedStarts_FailClosedStartDuringAnOutage_NotCounted()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var unfenced = new MetricCollector<long>(a.Registry.Metrics.UnfencedStarts);
        cluster.Store.BeginOutage();

        await FluentActions.Awaiting(async () => await a.Registry.StartAsync(Session)).Should().ThrowAsync<RunLeaseUnavailableException>();

        unfenced.GetMeasurementSnapshot().Should().BeEmpty();
    }

    [Fact]
    public async Task RenewDuration_PromptRenew_RecordsZeroSecondsPerBatch()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var renewDuration = new MetricCollector<double>(a.Registry.Metrics.RenewBatchDuration);
        using RunHandle first = await a.Registry.StartAsync("s1");
        using RunHandle second = await a.Registry.StartAsync("s2");

        cluster.Time.Advance(LeaseCluster.Renew);
        cluster.Time.Advance(LeaseCluster.Renew);

        renewDuration.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal([0, 0], "one measurement per batch, not per lease; the store answered at once");
        renewDuration.GetMeasurementSnapshot().Should().OnlyContain(m => m.Tags.Count == 0);
    }

    [Fact]
    public async Task RenewDuration_RenewAnsweredAfterOneAndAHalfSeconds_RecordsOneAndAHalfSeconds()
    {
        using var cluster = new LeaseCluster();
        var slow = new SlowRenewStore(cluster.Store);
        LeaseCluster.Host a = cluster.AddHost("a", store: slow);
        using var renewDuration = new MetricCollector<double>(a.Registry.Metrics.RenewBatchDuration);
        using RunHandle first = await a.Registry.StartAsync("s1");
        using RunHandle second = await a.Registry.StartAsync("s2");
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        slow.Gate = answer;

        cluster.Time.Advance(LeaseCluster.Renew);
        (await slow.Sent.Task.Guard()).Should().Be(2, "one batch carries both leases");
        cluster.Time.Advance(TimeSpan.FromSeconds(1.5));
        renewDuration.GetMeasurementSnapshot().Should().BeEmpty("the batch is still in flight");
        answer.SetResult();
        await renewDuration.WaitForMeasurementsAsync(1, TestTime.HangGuard);

        renewDuration.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1.5);
        first.IsCurrent.Should().BeTrue();
        second.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task RenewDuration_RenewFails_RecordsNothing()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        using var renewDuration = new MetricCollector<double>(a.Registry.Metrics.RenewBatchDuration);
        using RunHandle run = await a.Registry.StartAsync(Session);
        cluster.Store.BeginOutage();

        cluster.Time.Advance(LeaseCluster.Renew);

        renewDuration.GetMeasurementSnapshot().Should().BeEmpty("only answered batches are timed; failures are counted by store_failures");
    }

    /// <summary>A store whose renew, while <see cref="Gate"/> is set, is answered only when the gate opens.</summary>
    private sealed class SlowRenewStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
    {
        public TaskCompletionSource? Gate { get; set; }

        /// <summary>Completes with the size of the first batch sent while the gate was set.</summary>
        public TaskCompletionSource<int> Sent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
        {
            if (Gate is { } gate)
            {
                Sent.TrySetResult(leases.Count);
                await gate.Task.WaitAsync(cancellationToken);
            }

            return await Inner.RenewAsync(leases, ttl, cancellationToken);
        }

    }

    /// <summary>Every measurement of every instrument on one registry's meter, whatever its kind.</summary>
    private sealed class MeterRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<string> _measurements = [];

        public MeterRecorder(ActiveRunRegistry registry)
        {
            Meter meter = registry.Metrics.Meter;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => Add($"{instrument.Name} {value}"));
            _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) => Add($"{instrument.Name} {value}"));
            _listener.Start();
        }

        public IReadOnlyList<string> Measurements
        {
            get
            {
                lock (_measurements)
                {
                    return [.. _measurements];
                }
            }
        }

        public void Dispose() => _listener.Dispose();

        private void Add(string measurement)
        {
            lock (_measurements)
            {
                _measurements.Add(measurement);
            }
        }
    }
}
