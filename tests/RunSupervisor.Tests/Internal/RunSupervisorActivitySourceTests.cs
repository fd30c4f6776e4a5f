using System.Diagnostics;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// How a run's activity is ended (internal): the end reason and detail tags, the end time, and the stop itself. The
/// activities here are created by hand rather than through the "RunSupervisor" source, so no process-wide listener
/// is added that other test classes running in parallel would see.
/// </summary>
public sealed class RunSupervisorActivitySourceTests
{
    private static readonly DateTimeOffset EndedAt = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);

    [Fact]
    public void StopRun_WithDetail_TagsReasonAndDetailAndStopsTheActivityAtTheEndTime()
    {
        Activity activity = StartedActivity();

        RunSupervisorActivitySource.StopRun(activity, RunEndReason.Aborted, "operator asked", EndedAt);

        activity.GetTagItem(RunSupervisorActivitySource.EndReasonTag).Should().Be("aborted");
        activity.GetTagItem(RunSupervisorActivitySource.EndDetailTag).Should().Be("operator asked");
        activity.Status.Should().Be(ActivityStatusCode.Unset, "an abort is not an error");
        activity.IsStopped.Should().BeTrue();
        (activity.StartTimeUtc + activity.Duration).Should().Be(EndedAt.UtcDateTime);
    }

    [Fact]
    public void StopRun_WithoutDetail_AddsNoDetailTag()
    {
        Activity activity = StartedActivity();

        RunSupervisorActivitySource.StopRun(activity, RunEndReason.Completed, detail: null, EndedAt);

        activity.GetTagItem(RunSupervisorActivitySource.EndReasonTag).Should().Be("completed");
        activity.TagObjects.Select(t => t.Key).Should().NotContain(RunSupervisorActivitySource.EndDetailTag);
        activity.IsStopped.Should().BeTrue();
    }

    [Fact]
    public void StopRun_Faulted_SetsErrorStatusWithTheDetailAsDescription()
    {
        Activity activity = StartedActivity();

        RunSupervisorActivitySource.StopRun(activity, RunEndReason.Faulted, "provider threw", EndedAt);

        activity.Status.Should().Be(ActivityStatusCode.Error);
        activity.StatusDescription.Should().Be("provider threw");
        activity.GetTagItem(RunSupervisorActivitySource.EndDetailTag).Should().Be("provider threw");
        activity.IsStopped.Should().BeTrue();
    }

    /// <summary>A started activity that is not left current, as the registry's own run activities are.</summary>
    private static Activity StartedActivity()
    {
        Activity? ambient = Activity.Current;
        var activity = new Activity(RunSupervisorActivitySource.RunActivityName);
        activity.SetStartTime(EndedAt.UtcDateTime.AddMinutes(-1));
        activity.Start();
        Activity.Current = ambient;
        return activity;
    }
}
