using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The activity source "RunSupervisor": one activity per run, read with an <see cref="ActivityListener"/>, and its
/// agreement with the meter's instruments, read with <see cref="MetricCollector{T}"/>. Listeners are process-wide,
/// so every test uses its own session ids and looks only at its own activities.
/// </summary>
public sealed class TelemetryTests
{
    private const string SessionIdTag = "runsupervisor.session_id";
    private const string RunIdTag = "runsupervisor.run_id";
    private const string EndReasonTag = "runsupervisor.end_reason";

    public static TheoryData<RunEndReason, string, ActivityStatusCode> EndReasons() => new()
    {
        { RunEndReason.Completed, "completed", ActivityStatusCode.Unset },
        { RunEndReason.Faulted, "faulted", ActivityStatusCode.Error },
        { RunEndReason.Aborted, "aborted", ActivityStatusCode.Unset },
        { RunEndReason.TimedOut, "timed_out", ActivityStatusCode.Unset },
        { RunEndReason.Superseded, "superseded", ActivityStatusCode.Unset },
        { RunEndReason.ForceEvicted, "force_evicted", ActivityStatusCode.Error },
    };

    [Fact]
    public void ActivitySource_NoListener_CreatesNoActivity()
    {
        using var f = new RegistryFixture();

        RunSupervisorActivitySource.Source.HasListeners().Should().BeFalse("no test in this class leaves a listener behind");
        RunSupervisorActivitySource.StartRun(Session(), 1, f.Time.GetUtcNow()).Should().BeNull();
        using RunHandle run = f.Registry.Start(Session());
        Activity.Current.Should().BeNull();
    }

    [Fact]
    public void Activity_ListenerAddedWhileARunIsActive_TracesOnlyTheRunsStartedAfterIt()
    {
        using var f = new RegistryFixture();
        string before = Session();
        string after = Session();
        RunHandle early = f.Registry.Start(before);

        using var listener = new RunActivityRecorder();
        RunHandle late = f.Registry.Start(after);
        early.Dispose();
        late.Dispose();

        listener.Started(before).Should().BeEmpty("whether a run is traced is decided when it starts");
        listener.Stopped(before).Should().BeEmpty();
        listener.Stopped(after).Should().ContainSingle();
    }

    [Fact]
    public void Activity_RunReleased_HasNameTagsAndFakeClockTimes()
    {
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        string session = Session();
        DateTimeOffset startedAt = f.Time.GetUtcNow();

        RunHandle run = f.Registry.Start(session);
        listener.Started(session).Should().ContainSingle().Which.IsStopped.Should().BeFalse("the activity lasts as long as the run");
        f.Time.Advance(TimeSpan.FromMilliseconds(42_250));
        run.Dispose();

        Activity activity = listener.Stopped(session).Should().ContainSingle().Subject;
        activity.Source.Name.Should().Be("RunSupervisor");
        activity.OperationName.Should().Be("runsupervisor.run");
        activity.Kind.Should().Be(ActivityKind.Internal);
        activity.GetTagItem(SessionIdTag).Should().Be(session);
        activity.GetTagItem(RunIdTag).Should().Be(run.RunId);
        activity.GetTagItem(EndReasonTag).Should().Be("completed");
        activity.StartTimeUtc.Should().Be(startedAt.UtcDateTime);
        activity.Duration.Should().Be(TimeSpan.FromMilliseconds(42_250));
        activity.Status.Should().Be(ActivityStatusCode.Unset);
    }

    [Theory]
    [MemberData(nameof(EndReasons))]
    public async Task Activity_EachEndReason_TagMatchesTheMetricAndStatusIsErrorOnlyForFaultedAndEvicted(RunEndReason reason, string tag, ActivityStatusCode status)
    {
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        using var ended = new MetricCollector<long>(f.Registry.Metrics.RunsEnded);
        using var duration = new MetricCollector<double>(f.Registry.Metrics.RunDuration);
        string session = Session();
        RunHandle run = f.Registry.Start(session);
        f.Time.Advance(TimeSpan.FromSeconds(1)); // a zero-length activity would report one tick, not zero

        f.EndRun(run, reason);

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(reason);
        Activity activity = listener.Stopped(session).Single(a => (long)a.GetTagItem(RunIdTag)! == run.RunId);
        activity.GetTagItem(EndReasonTag).Should().Be(tag);
        activity.Status.Should().Be(status);
        if (status == ActivityStatusCode.Error)
        {
            activity.StatusDescription.Should().NotBeNullOrWhiteSpace();
        }

        ended.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags[EndReasonTag].Should().Be(tag);
        duration.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(activity.Duration.TotalSeconds);
    }

    [Fact]
    public void Activity_AmbientActivity_IsTheParentAndStaysCurrent()
    {
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        string session = Session();
        using var parent = new Activity("host.request").Start();

        RunHandle run = f.Registry.Start(session);
        Activity.Current.Should().BeSameAs(parent, "starting a run must not change the caller's ambient activity");
        run.Dispose();
        Activity.Current.Should().BeSameAs(parent, "ending a run must not change the ambient activity either");

        Activity activity = listener.Stopped(session).Should().ContainSingle().Subject;
        activity.ParentId.Should().Be(parent.Id);
        activity.TraceId.Should().Be(parent.TraceId);
    }

    [Fact]
    public void Activity_EvictedByTheWatchdog_StopsOnTheWatchdogWithTheEvictionInstant()
    {
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        string session = Session();
        f.Registry.Start(session).Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        Activity activity = listener.Stopped(session).Should().ContainSingle().Subject;
        activity.Duration.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
        activity.Status.Should().Be(ActivityStatusCode.Error);
    }

    [Fact]
    public void Activity_RegistryDisposed_StopsEveryRunsActivity()
    {
        using var listener = new RunActivityRecorder();
        var f = new RegistryFixture();
        string a = Session();
        string b = Session();
        f.Registry.Start(a);
        f.Registry.Start(b);

        f.Dispose();

        listener.Stopped(a).Should().ContainSingle().Which.GetTagItem(EndReasonTag).Should().Be("aborted");
        listener.Stopped(b).Should().ContainSingle();
        listener.Started(a).Should().OnlyContain(x => x.IsStopped);
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Activity_ListenerThrows_RunStillStartsAndEndsAndTheFailureIsLogged(bool throwOnStart, bool throwOnStop)
    {
        using var listener = new RunActivityRecorder(throwOnStart: throwOnStart, throwOnStop: throwOnStop);
        using var f = new RegistryFixture();
        string session = Session();

        RunHandle run = f.Registry.Start(session);
        f.Registry.IsActive(session).Should().BeTrue();
        run.Dispose();

        f.Registry.IsActive(session).Should().BeFalse();
        run.Completion.IsCompletedSuccessfully.Should().BeTrue();
        f.LogsWithEvent("CallbackFailed").Should().ContainSingle().Which.Message.Should().Contain("activity listener");
        listener.Started(session).Should().ContainSingle("the activity was made and started before the listener threw")
            .Which.IsStopped.Should().BeTrue("every listener that saw it start sees it stop: no span is left open");
    }

    [Fact]
    public void Activity_ListenerNotSampling_CreatesNoActivity()
    {
        using var listener = new RunActivityRecorder(sample: false);
        using var f = new RegistryFixture();
        string session = Session();

        f.Registry.Start(session).Dispose();

        listener.Started(session).Should().BeEmpty();
    }

    [Fact]
    public void Activity_ManyThreadsSupersedingOneSession_EveryStartedActivityIsStoppedOnce()
    {
        // A supersede on another thread can end a run before its Start has handed the activity over: the hand-over
        // must still stop it, exactly once.
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        string session = Session();
        var supersede = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede };

        Parallel.For(0, 2_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ => f.Registry.Start(session, supersede));
        f.Registry.TryAbort(session);
        f.Time.Advance(RegistryFixture.Grace);

        listener.Started(session).Should().HaveCount(2_000).And.OnlyContain(a => a.IsStopped);
        listener.Stopped(session).Should().HaveCount(2_000).And.OnlyHaveUniqueItems();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Activity_WaitingStartAdmittedByAnotherRequestsRelease_ParentIsTheWaitingCallersActivityNotTheReleasers(bool waiterTraced)
    {
        // The waiting start's run is made on the thread whose release admits it, inside that request's trace.
        using var listener = new RunActivityRecorder();
        using var f = new RegistryFixture();
        string session = Session();
        RunHandle first = f.Registry.Start(session);
        Activity? waiterRequest = waiterTraced ? new Activity("waiter.request").Start() : null;
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });
        waiterRequest?.Stop();
        Activity.Current = null;

        ActivityTraceId releaserTrace;
        using (var releaserRequest = new Activity("releaser.request").Start())
        {
            releaserTrace = releaserRequest.TraceId;
            first.Dispose();
            Activity.Current = null;
        }

        RunHandle second = await waiting.AsTask().Guard();
        second.Dispose();

        Activity activity = listener.Stopped(session).Single(a => (long)a.GetTagItem(RunIdTag)! == second.RunId);
        activity.TraceId.Should().NotBe(releaserTrace, "the run belongs to the waiting caller's trace, not the releasing request's");
        if (waiterRequest is null)
        {
            activity.Parent.Should().BeNull("a caller with no activity gets a root activity");
            activity.ParentSpanId.Should().Be(default(ActivitySpanId));
        }
        else
        {
            activity.TraceId.Should().Be(waiterRequest.TraceId);
            activity.ParentSpanId.Should().Be(waiterRequest.SpanId, "the waiting caller's activity is the parent, even once it has stopped");
        }
    }

    private static string Session() => "telemetry-" + Guid.NewGuid().ToString("N");

    /// <summary>Listens to the "RunSupervisor" source and records every started and stopped activity.</summary>
    private sealed class RunActivityRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _started = new();
        private readonly ConcurrentQueue<Activity> _stopped = new();

        public RunActivityRecorder(bool sample = true, bool throwOnStart = false, bool throwOnStop = false)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "RunSupervisor",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => sample ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
                ActivityStarted = activity =>
                {
                    _started.Enqueue(activity);

                    // Only for this class's sessions: the listener sees the runs of every test running beside it.
                    if (throwOnStart && IsOurs(activity))
                    {
                        throw new InvalidOperationException("listener failed on start");
                    }
                },
                ActivityStopped = activity =>
                {
                    _stopped.Enqueue(activity);
                    if (throwOnStop && IsOurs(activity))
                    {
                        throw new InvalidOperationException("listener failed on stop");
                    }
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        private static bool IsOurs(Activity activity) => ((string?)activity.GetTagItem(SessionIdTag))?.StartsWith("telemetry-", StringComparison.Ordinal) == true;

        public List<Activity> Started(string sessionId) => [.. _started.Where(a => (string?)a.GetTagItem(SessionIdTag) == sessionId)];

        public List<Activity> Stopped(string sessionId) => [.. _stopped.Where(a => (string?)a.GetTagItem(SessionIdTag) == sessionId)];

        public void Dispose() => _listener.Dispose();
    }
}
