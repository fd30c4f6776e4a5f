using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Draining;

/// <summary><see cref="DrainOptions.CancelWaiting"/>: a drain that fails the starts waiting for admission, and reports them.</summary>
public sealed class DrainCancelWaitingTests
{
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) };

    [Fact]
    public async Task DrainAsync_CancelWaiting_FailsEveryWaiterAndListsThemOldestFirst()
    {
        using var f = new RegistryFixture();
        RunHandle s1 = f.Registry.Start("s1");
        RunHandle s2 = f.Registry.Start("s2");
        Task<RunHandle> first = f.Registry.StartAsync("s1", Wait).AsTask();
        f.Time.Advance(TimeSpan.FromSeconds(1));
        Task<RunHandle> second = f.Registry.StartAsync("s2", Wait).AsTask();
        Task<RunHandle> third = f.Registry.StartAsync("s1", Wait).AsTask();

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { CancelWaiting = true });
        s1.Dispose();
        s2.Dispose();
        DrainResult result = await drain.Guard();

        result.CancelledStarts.Should().Equal("s1", "s2", "s1");
        foreach (Task<RunHandle> waiter in new[] { first, second, third })
        {
            (await FluentActions.Awaiting(() => waiter.Guard()).Should().ThrowAsync<OperationCanceledException>()).WithMessage("*draining*");
        }

        f.Registry.ActiveCount.Should().Be(0, "the runs that ended admitted no waiter");
        result.Drained.Should().Equal("s1", "s2");
        f.LogsWithEvent("DrainCancelledWaiting").Should().ContainSingle();
    }

    [Fact]
    public async Task DrainAsync_CancelWaitingWithNoWaiters_ListsAndLogsNoCancellation()
    {
        using var f = new RegistryFixture();
        RunHandle s1 = f.Registry.Start("s1");

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { CancelWaiting = true });
        s1.Dispose();
        DrainResult result = await drain.Guard();

        result.CancelledStarts.Should().BeEmpty();

        // Nothing was cancelled, so there is nothing to tell the operator.
        f.LogsWithEvent("DrainCancelledWaiting").Should().BeEmpty();
    }

    [Fact]
    public async Task DrainAsync_WithoutCancelWaiting_WaitersAreAdmittedAsRunsEnd()
    {
        using var f = new RegistryFixture();
        RunHandle s1 = f.Registry.Start("s1");
        Task<RunHandle> waiter = f.Registry.StartAsync("s1", Wait).AsTask();

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1));
        s1.Dispose();
        DrainResult result = await drain.Guard();

        result.CancelledStarts.Should().BeEmpty();
        using RunHandle admitted = await waiter.Guard();
        admitted.IsCurrent.Should().BeTrue("a drain waits only for the runs active at its call");
    }

    [Fact]
    public async Task DrainAsync_CancelWaiting_CancelledWaiterOwesTheHeartbeatsItsSessionDropped()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunHandle s1 = f.Registry.Start("s1");
        Task<RunHandle> waiter = f.Registry.StartAsync("s1", Wait).AsTask();
        policy.Resolve(new QueueRequest("s1", IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { CancelWaiting = true });
        owed.Should().Be(0, "the run still holds the session");
        s1.Dispose();
        await drain.Guard();

        owed.Should().Be(1);
        await FluentActions.Awaiting(() => waiter.Guard()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task DrainAsync_CancelWaiting_ARunEndsAsTheDrainBegins_ItsAdmittedWaiterIsReportedAndWaitedFor()
    {
        // The release comes on "another thread" at the drain's first clock read, before it takes the registry's lock: the
        // waiter it admits was admitted before the drain began, so it is not cancelled, and its run must be the drain's.
        var clock = new ReadHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace }, clock);
        RunHandle running = registry.Start("s1");
        Task<RunHandle> waiter = registry.StartAsync("s1", Wait).AsTask();
        clock.OnRead(1, running.Dispose);

        Task<DrainResult> drain = registry.DrainAsync(TimeSpan.FromMinutes(1), new DrainOptions { CancelWaiting = true });

        clock.HookRan.Should().BeTrue();
        RunHandle admitted = await waiter.Guard();
        drain.IsCompleted.Should().BeFalse("the admitted run is active when the drain lists the runs: it waits for it");
        admitted.Dispose();
        DrainResult result = await drain.Guard();
        result.Runs.Should().ContainSingle().Which.RunId.Should().Be(admitted.RunId);
        result.CancelledStarts.Should().BeEmpty();
        result.IsComplete.Should().BeTrue();
        registry.ActiveCount.Should().Be(0);
    }
}
