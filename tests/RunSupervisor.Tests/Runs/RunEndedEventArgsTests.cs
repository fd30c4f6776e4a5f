namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="RunEndedEventArgs"/> built by hand (as a host's own tests or adapters do): it keeps what it is given
/// and refuses a missing session.
/// </summary>
public sealed class RunEndedEventArgsTests
{
    [Fact]
    public void Constructor_AllValues_ExposesThem()
    {
        var endedAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

        var args = new RunEndedEventArgs("s", 4, RunEndReason.Aborted, TimeSpan.FromSeconds(3), "stop", endedAt, 9);

        args.SessionId.Should().Be("s");
        args.RunId.Should().Be(4);
        args.Reason.Should().Be(RunEndReason.Aborted);
        args.Duration.Should().Be(TimeSpan.FromSeconds(3));
        args.Detail.Should().Be("stop");
        args.EndedAt.Should().Be(endedAt);
        args.FencingToken.Should().Be(9);
    }

    [Fact]
    public void Constructor_NullSessionId_ThrowsArgumentNull()
    {
        Action create = () => _ = new RunEndedEventArgs(null!, 4, RunEndReason.Completed, TimeSpan.Zero, null, DateTimeOffset.UnixEpoch, 4);

        create.Should().ThrowExactly<ArgumentNullException>().WithParameterName("sessionId");
    }
}
