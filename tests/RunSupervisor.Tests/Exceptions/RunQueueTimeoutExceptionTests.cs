namespace RunSupervisor.Tests.Exceptions;

/// <summary>
/// <see cref="RunQueueTimeoutException"/>: the message names the session, the lane only when the start had one, and
/// how long it waited; the properties carry the same facts.
/// </summary>
public sealed class RunQueueTimeoutExceptionTests
{
    [Fact]
    public void Constructor_DefaultLane_MessageLeavesTheLaneOut()
    {
        var ex = new RunQueueTimeoutException("s", lane: null, TimeSpan.FromSeconds(5));

        ex.Message.Should().Be("The start for session 's' was not admitted within 00:00:05; it never ran.");
        ex.SessionId.Should().Be("s");
        ex.Lane.Should().BeNull();
        ex.Waited.Should().Be(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Constructor_NamedLane_MessageNamesTheLane()
    {
        var ex = new RunQueueTimeoutException("s", "bg", TimeSpan.FromMinutes(2));

        ex.Message.Should().Be("The start for session 's' in lane 'bg' was not admitted within 00:02:00; it never ran.");
        ex.SessionId.Should().Be("s");
        ex.Lane.Should().Be("bg");
        ex.Waited.Should().Be(TimeSpan.FromMinutes(2));
    }
}
