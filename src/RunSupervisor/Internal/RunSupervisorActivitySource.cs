using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// The activity source "RunSupervisor": one activity (span) per run, from its start to the moment it leaves the
/// registry, tagged with the session id, the run id and the end reason (the same snake_case values as the metrics).
/// </summary>
/// <remarks>
/// <para>Costs one <see cref="ActivitySource.HasListeners"/> check per run when nobody listens. Listeners are foreign
/// code: the registry calls into this class only outside its lock.</para>
/// <para>Start and end times come from the registry's <see cref="TimeProvider"/>, so the span's duration is the run's
/// duration as the metrics record it. The activity is never made <see cref="Activity.Current"/>: a run starts and
/// ends on whatever threads its owner and the watchdog use, and must not leak into their ambient context.</para>
/// </remarks>
internal static class RunSupervisorActivitySource
{
    public const string Name = "RunSupervisor";
    public const string RunActivityName = "runsupervisor.run";
    public const string SessionIdTag = "runsupervisor.session_id";
    public const string RunIdTag = "runsupervisor.run_id";
    public const string EndReasonTag = RunSupervisorMetrics.EndReasonTag;
    public const string EndDetailTag = "runsupervisor.end_detail";

    public static ActivitySource Source { get; } = new(Name, typeof(RunSupervisorActivitySource).Assembly.GetName().Version?.ToString());

    /// <summary>Starts the run's activity if anyone listens; its parent is the caller's current activity.</summary>
    public static Activity? StartRun(string sessionId, long runId, DateTimeOffset startedAt) => StartRun(sessionId, runId, startedAt, parentContext: default, ambientParent: true);

    /// <summary>
    /// Starts the run's activity if anyone listens, as a child of <paramref name="parent"/> (a root when
    /// <see langword="null"/>), whatever this thread's current activity; the parent may have stopped meanwhile.
    /// </summary>
    public static Activity? StartRun(string sessionId, long runId, DateTimeOffset startedAt, Activity? parent) => StartRun(sessionId, runId, startedAt, parent?.Context ?? default, ambientParent: false);

    private static Activity? StartRun(string sessionId, long runId, DateTimeOffset startedAt, ActivityContext parentContext, bool ambientParent)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        // StartActivity makes the new activity current on this thread; the caller's ambient activity stays as it was.
        // Without a parent context it takes this thread's current activity as the parent, which is cleared when that is
        // not the parent meant.
        Activity? previous = Activity.Current;
        try
        {
            if (!ambientParent)
            {
                Activity.Current = null;
            }

            return Source.StartActivity(
                RunActivityName,
                ActivityKind.Internal,
                parentContext,
                [new(SessionIdTag, sessionId), new(RunIdTag, runId)],
                links: null,
                startTime: startedAt);
        }
        catch when (Activity.Current is { } started && !ReferenceEquals(started, previous) && started.Source == Source && !started.IsStopped)
        {
            // A listener threw as the activity started: it exists (it is current by then), and the listeners before the
            // faulty one saw it start. It is stopped now rather than lost open; the failure goes on to be logged.
            started.Stop();
            throw;
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    /// <summary>Ends the run's activity: end reason and detail tags, status, end time.</summary>
    public static void StopRun(Activity activity, RunEndReason reason, string? detail, DateTimeOffset endedAt)
    {
        activity.SetTag(EndReasonTag, RunSupervisorMetrics.GetEndReasonName(reason));
        if (detail is not null)
        {
            activity.SetTag(EndDetailTag, detail);
        }

        if (reason is RunEndReason.Faulted or RunEndReason.ForceEvicted)
        {
            activity.SetStatus(ActivityStatusCode.Error, detail);
        }

        activity.SetEndTime(endedAt.UtcDateTime);

        // Stop() makes the activity's parent current on this thread; this thread's ambient activity is not ours to change.
        Activity? previous = Activity.Current;
        try
        {
            activity.Stop();
        }
        finally
        {
            Activity.Current = previous;
        }
    }
}
