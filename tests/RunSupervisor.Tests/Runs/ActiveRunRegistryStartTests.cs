using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Starting runs on <see cref="ActiveRunRegistry"/>: <c>Start</c>, <c>TryStart</c>, <c>IsActive</c>, <c>TryGetRun</c> and the
/// snapshots of active runs.
/// </summary>
public sealed class ActiveRunRegistryStartTests
{

    [Fact]
    public void Start_AfterAWallClockStep_StartedAtFollowsTheNewWallClockWithinASecond()
    {
        var clock = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(timeProvider: clock);
        DateTimeOffset before = clock.GetUtcNow();

        clock.StepWallClock(TimeSpan.FromHours(1));
        using (RunHandle early = registry.Start("early"))
        {
            early.StartedAt.Should().Be(before, "the wall-clock offset is re-read at most once a second of monotonic time");
        }

        clock.Elapse(TimeSpan.FromSeconds(1));
        using RunHandle late = registry.Start("late");

        late.StartedAt.Should().Be(clock.GetUtcNow());
        late.Deadline.Should().Be(late.StartedAt + new RunSupervisorOptions().RunTimeout);
    }

    [Fact]
    public void Start_IdleSession_ReturnsRunningCurrentHandle()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(5)); // so StartedAt is not simply the fake clock's initial value
        DateTimeOffset now = f.Time.GetUtcNow();

        RunHandle run = f.Registry.Start("s1");

        run.SessionId.Should().Be("s1");
        run.RunId.Should().BePositive();
        run.StartedAt.Should().Be(now);
        run.Deadline.Should().Be(now + RegistryFixture.Timeout);
        run.Status.Should().Be(RunStatus.Running);
        run.IsCurrent.Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        run.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.IsActive("s2").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void IsActive_SessionIdsDifferingOnlyInCase_AreDistinctSessions()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("Session");

        f.Registry.IsActive("Session").Should().BeTrue();
        f.Registry.IsActive("session").Should().BeFalse();
    }

    [Fact]
    public void Start_BusySession_ThrowsSessionBusyNamingSessionAndCurrentRun()
    {
        using var f = new RegistryFixture();

        // A few earlier runs so the current run id is not simply 1.
        f.Registry.Start("other-1").Dispose();
        f.Registry.Start("other-2").Dispose();
        RunHandle current = f.Registry.Start("busy-session");

        SessionBusyException ex = f.Registry.Invoking(r => r.Start("busy-session"))
            .Should().ThrowExactly<SessionBusyException>().Which;

        ex.SessionId.Should().Be("busy-session");
        ex.RunId.Should().Be(current.RunId);
        ex.Message.Should().Contain("'busy-session'").And.Contain($"RunId {current.RunId}");

        // The refused start changed nothing.
        current.IsCurrent.Should().BeTrue();
        current.Status.Should().Be(RunStatus.Running);
        current.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.Ended.Should().HaveCount(2);
    }

    [Fact]
    public void TryStart_IdleSession_ReturnsTrueAndCurrentHandle()
    {
        using var f = new RegistryFixture();

        bool started = f.Registry.TryStart("s1", out RunHandle? run);

        started.Should().BeTrue();
        run.Should().NotBeNull();
        run!.SessionId.Should().Be("s1");
        run.IsCurrent.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeTrue();
    }

    [Fact]
    public void TryStart_BusySession_ReturnsFalseAndNullAndLeavesCurrentRunAlone()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start("s1");

        bool started = f.Registry.TryStart("s1", out RunHandle? second);

        started.Should().BeFalse();
        second.Should().BeNull();
        current.IsCurrent.Should().BeTrue();
        current.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.Registry.TryGetRun("s1", out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(current.RunId);
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void Start_SuccessiveRuns_RunIdsStrictlyIncreaseAcrossSessionsAndRestarts()
    {
        using var f = new RegistryFixture();
        var ids = new List<long>();

        RunHandle a = f.Registry.Start("s1");
        ids.Add(a.RunId);
        ids.Add(f.Registry.Start("s2").RunId);
        a.Dispose();
        ids.Add(f.Registry.Start("s1").RunId);                                          // same session, after release
        ids.Add(f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).RunId); // same session, superseding
        f.Registry.TryStart("s3", out RunHandle? viaTry).Should().BeTrue();
        ids.Add(viaTry!.RunId);

        ids.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public void TryGetRun_ActiveSession_ReturnsPointInTimeSnapshot()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(7));
        DateTimeOffset startedAt = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryGetRun("s1", out RunInfo? before).Should().BeTrue();
        before.Should().Be(new RunInfo("s1", run.RunId, startedAt, startedAt + RegistryFixture.Timeout, RunStatus.Running, run.RunId, startedAt, Background: false, Lane: null));

        run.Abort();

        // The earlier snapshot does not follow the run; a new one does.
        before!.Status.Should().Be(RunStatus.Running);
        f.Registry.TryGetRun("s1", out RunInfo? after).Should().BeTrue();
        after!.Status.Should().Be(RunStatus.Aborting);
        after.RunId.Should().Be(run.RunId);
    }

    [Fact]
    public void TryGetRun_IdleOrReleasedSession_ReturnsFalseAndNull()
    {
        using var f = new RegistryFixture();

        f.Registry.TryGetRun("never-used", out RunInfo? none).Should().BeFalse();
        none.Should().BeNull();

        f.Registry.Start("s1").Dispose();
        f.Registry.TryGetRun("s1", out RunInfo? released).Should().BeFalse();
        released.Should().BeNull();
    }

    [Fact]
    public void GetActiveRuns_SeveralSessions_ListsOneSnapshotPerActiveRunOrderedByRunId()
    {
        using var f = new RegistryFixture();
        f.Registry.GetActiveRuns().Should().BeEmpty();

        RunHandle c = f.Registry.Start("c");
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        a.Dispose();

        IReadOnlyList<RunInfo> runs = f.Registry.GetActiveRuns();

        runs.Select(r => (r.SessionId, r.RunId)).Should().Equal(("c", c.RunId), ("b", b.RunId));
        runs.Should().BeInAscendingOrder(r => r.RunId);
        f.Registry.ActiveCount.Should().Be(2);

        // A snapshot: later starts do not show up in a list already returned.
        f.Registry.Start("d");
        runs.Should().HaveCount(2);
        f.Registry.GetActiveRuns().Should().HaveCount(3);
        f.Registry.ActiveCount.Should().Be(3);
    }

    [Fact]
    public void GetActiveRuns_ManySessions_OrderedByRunIdNotByWhereTheTableKeepsThem()
    {
        using var f = new RegistryFixture();
        var started = new List<long>();
        for (int i = 0; i < 64; i++)
        {
            // Names unrelated to start order, so the table's slot order cannot match the run ids by construction.
            started.Add(f.Registry.Start(string.Create(CultureInfo.InvariantCulture, $"session-{(i * 37) % 64}")).RunId);
        }

        f.Registry.GetActiveRuns().Select(r => r.RunId).Should().Equal(started);
    }

    [Fact]
    public void ActiveCount_StartsAndReleases_TracksNumberOfBusySessions()
    {
        using var f = new RegistryFixture();
        f.Registry.ActiveCount.Should().Be(0);

        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        f.Registry.ActiveCount.Should().Be(2);

        // Superseding replaces a run: the count stays the same.
        f.Registry.Start("a", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        f.Registry.ActiveCount.Should().Be(2);

        b.Dispose();
        f.Registry.ActiveCount.Should().Be(1);

        // A stale release (a was superseded) does not decrement.
        a.Dispose();
        f.Registry.ActiveCount.Should().Be(1);
    }

    [Fact]
    public void Start_PerRunTimeoutOverride_SetsDeadlineFromOverride()
    {
        using var f = new RegistryFixture();
        DateTimeOffset now = f.Time.GetUtcNow();

        RunHandle run = f.Registry.Start("s1", new RunStartOptions { Timeout = TimeSpan.FromSeconds(42) });

        run.Deadline.Should().Be(now + TimeSpan.FromSeconds(42));
    }

}
