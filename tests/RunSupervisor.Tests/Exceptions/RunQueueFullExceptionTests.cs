using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Exceptions;

/// <summary>
/// <see cref="RunQueueFullException"/> as a start that does not wait meets it: the message says whether the registry
/// or the start's lane is full, names the session and the cap, and the properties carry the same facts.
/// </summary>
public sealed class RunQueueFullExceptionTests
{
    [Fact]
    public void Start_DefaultLaneAtMaxActiveRuns_MessageNamesTheRegistryCap()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { MaxActiveRuns = 1 });
        using RunHandle running = f.Registry.Start("a");

        Action start = () => f.Registry.Start("b");

        RunQueueFullException ex = start.Should().Throw<RunQueueFullException>().Which;
        ex.Message.Should().Be("The registry is at its cap of 1 concurrent runs (MaxActiveRuns); session 'b' cannot start now. StartAsync waits for a slot.");
        ex.SessionId.Should().Be("b");
        ex.Lane.Should().BeNull();
        ex.Limit.Should().Be(1);
    }

    [Fact]
    public void Start_NamedLaneAtItsCap_MessageNamesTheLaneAndItsCap()
    {
        var options = new RunSupervisorOptions();
        options.Lanes["bg"] = 2;
        using var f = new RegistryFixture(options);
        var inLane = new RunStartOptions { Lane = "bg" };
        using RunHandle first = f.Registry.Start("a", inLane);
        using RunHandle second = f.Registry.Start("b", inLane);

        Action start = () => f.Registry.Start("c", inLane);

        RunQueueFullException ex = start.Should().Throw<RunQueueFullException>().Which;
        ex.Message.Should().Be("Lane 'bg' is at its cap of 2 concurrent runs (or the registry at MaxActiveRuns); session 'c' cannot start now. StartAsync waits for a slot.");
        ex.SessionId.Should().Be("c");
        ex.Lane.Should().Be("bg");
        ex.Limit.Should().Be(2);
    }
}
