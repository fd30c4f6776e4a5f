using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary><see cref="ActiveRunRegistry.GetQueueSnapshot"/>: queue lengths and the oldest wait, per lane, for health data.</summary>
public sealed class QueueSnapshotTests
{
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(5) };

    [Fact]
    public void GetQueueSnapshot_NothingWaits_OneEmptyEntryPerLane()
    {
        var options = new RunSupervisorOptions { Lanes = { ["cron"] = 1 } };
        using var f = new RegistryFixture(options);

        IReadOnlyList<LaneQueueInfo> lanes = f.Registry.GetQueueSnapshot();

        lanes.Should().Equal(new LaneQueueInfo(null, 0, null), new LaneQueueInfo("cron", 0, null));
    }

    [Fact]
    public async Task GetQueueSnapshot_WaitersForSessionsAndSlots_CountedPerLaneWithTheOldestWait()
    {
        var options = new RunSupervisorOptions { Lanes = { ["cron"] = 1 } };
        using var f = new RegistryFixture(options);
        DateTimeOffset firstQueuedAt = f.Time.GetUtcNow();
        using RunHandle busy = f.Registry.Start("s1");
        Task<RunHandle> sessionWaiter = f.Registry.StartAsync("s1", Wait).AsTask();
        using RunHandle cron = f.Registry.Start("c1", new RunStartOptions { Lane = "cron" });
        f.Time.Advance(TimeSpan.FromSeconds(3));
        DateTimeOffset slotQueuedAt = f.Time.GetUtcNow();
        Task<RunHandle> slotWaiter = f.Registry.StartAsync("c2", new RunStartOptions { Lane = "cron", QueueTimeout = TimeSpan.FromMinutes(5) }).AsTask();
        f.Time.Advance(TimeSpan.FromSeconds(2));
        Task<RunHandle> secondSlotWaiter = f.Registry.StartAsync("c3", new RunStartOptions { Lane = "cron", QueueTimeout = TimeSpan.FromMinutes(5) }).AsTask();

        IReadOnlyList<LaneQueueInfo> lanes = f.Registry.GetQueueSnapshot();

        lanes.Should().Equal(new LaneQueueInfo(null, 1, firstQueuedAt), new LaneQueueInfo("cron", 2, slotQueuedAt));
        busy.Dispose();
        cron.Dispose();
        (await sessionWaiter.Guard()).Dispose();
        (await slotWaiter.Guard()).Dispose();
        (await secondSlotWaiter.Guard()).Dispose();
        f.Registry.GetQueueSnapshot().Should().OnlyContain(l => l.Waiting == 0 && l.OldestQueuedAt == null);
    }
}
