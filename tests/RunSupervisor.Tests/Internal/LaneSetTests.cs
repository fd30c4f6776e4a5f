namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The registry's admission lanes (internal): the default lane at index 0, the configured lanes after it in ordinal
/// name order whatever order they were configured in, and the error that names the configured lanes.
/// </summary>
public sealed class LaneSetTests
{
    [Fact]
    public void Constructor_LanesConfiguredOutOfOrder_IndexesThemInOrdinalNameOrder()
    {
        // Inserted out of order, with an upper-case name that a culture-aware sort would put after "alpha".
        var lanes = new LaneSet(new Dictionary<string, int> { ["gamma"] = 3, ["alpha"] = 1, ["Zeta"] = 26 });

        lanes.Names.Should().Equal(null, "Zeta", "alpha", "gamma");
        lanes.Caps.Should().Equal(int.MaxValue, 26, 1, 3);
        lanes.Count.Should().Be(4);
        lanes.IndexOf("Zeta", "lane").Should().Be(1);
        lanes.IndexOf("alpha", "lane").Should().Be(2);
        lanes.IndexOf("gamma", "lane").Should().Be(3);
        lanes.IndexOf(null, "lane").Should().Be(0, "no name is the default lane");
    }

    [Fact]
    public void IndexOf_UnknownLane_ThrowsNamingTheConfiguredLanesInOrder()
    {
        var lanes = new LaneSet(new Dictionary<string, int> { ["gamma"] = 3, ["alpha"] = 1, ["beta"] = 2 });

        Action act = () => lanes.IndexOf("delta", "options");

        act.Should().Throw<ArgumentException>()
            .WithMessage("RunStartOptions.Lane 'delta' is not one of RunSupervisorOptions.Lanes (alpha, beta, gamma).*")
            .Which.ParamName.Should().Be("options");
    }

    [Fact]
    public void IndexOf_NoLanesConfigured_ThrowsSayingNoneAreConfigured()
    {
        var lanes = new LaneSet(new Dictionary<string, int>());

        Action act = () => lanes.IndexOf("batch", "options");

        lanes.Count.Should().Be(1, "the default lane is always there");
        act.Should().Throw<ArgumentException>()
            .WithMessage("RunStartOptions.Lane 'batch' is not one of RunSupervisorOptions.Lanes (none configured).*")
            .Which.ParamName.Should().Be("options");
    }
}
