using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>The two read-only accessors the health check uses: the ledger's cap and the snapshot of drop streaks.</summary>
public sealed class HealthAccessorTests
{
    [Fact]
    public void MaxAbandonedRuns_Always_IsTheConfiguredCapAndSurvivesDisposal()
    {
        var f = new RegistryFixture(new RunSupervisorOptions { MaxAbandonedRuns = 7 });

        f.Registry.MaxAbandonedRuns.Should().Be(7);
        f.Dispose();
        f.Registry.MaxAbandonedRuns.Should().Be(7);
    }

    [Fact]
    public void MaxAbandonedRuns_Defaults_Is1000()
    {
        using var registry = new ActiveRunRegistry();

        registry.MaxAbandonedRuns.Should().Be(1000);
    }

    [Fact]
    public void GetDroppedHeartbeats_Snapshot_ListsOnlyDroppingSessionsAndDoesNotChangeLater()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        using RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        f.Registry.Start("quiet");
        policy.Resolve(new QueueRequest("a", IsHeartbeat: true));
        policy.Resolve(new QueueRequest("a", IsHeartbeat: true));
        policy.Resolve(new QueueRequest("b", IsHeartbeat: true));

        IReadOnlyDictionary<string, int> snapshot = policy.GetDroppedHeartbeats();
        b.Dispose(); // owed: b's streak resets
        policy.Resolve(new QueueRequest("a", IsHeartbeat: true));

        snapshot.Should().BeEquivalentTo(new Dictionary<string, int> { ["a"] = 2, ["b"] = 1 });
        policy.GetDroppedHeartbeats().Should().BeEquivalentTo(new Dictionary<string, int> { ["a"] = 3 });
    }

    [Fact]
    public void GetDroppedHeartbeats_NothingDropped_IsEmpty()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);

        policy.GetDroppedHeartbeats().Should().BeEmpty();
    }
}
