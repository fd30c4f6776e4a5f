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
    public static Activity? StartRun(string sessionId, long runId, DateTimeOffset startedAt)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        // StartActivity makes the new activity current on this thread; the caller's ambient activity stays as it was.
        Activity? previous = Activity.Current;
        try
        {
            return Source.StartActivity(
                RunActivityName,
                ActivityKind.Internal,
                parentContext: default,
                [new(SessionIdTag, sessionId), new(RunIdTag, runId)],
                links: null,
                startTime: startedAt);
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
