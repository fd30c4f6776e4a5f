namespace RunSupervisor.Tests.Exceptions;

/// <summary>
/// <see cref="RunTimedOutException"/>: the message tells a deadline from an idle timeout, and a reason that is neither
/// is refused with a message saying which reasons are allowed.
/// </summary>
public sealed class RunTimedOutExceptionTests
{
    [Fact]
    public void Constructor_Stalled_MessageSaysNoProgress()
    {
        var ex = new RunTimedOutException("s", 3, TimeSpan.FromSeconds(45), RunEndReason.Stalled);

        ex.Message.Should().Be("Run 3 for session 's' stalled: no progress for 00:00:45.");
        ex.Reason.Should().Be(RunEndReason.Stalled);
        ex.Timeout.Should().Be(TimeSpan.FromSeconds(45));
    }

    [Theory]
    [InlineData(RunEndReason.Completed)]
    [InlineData(RunEndReason.Aborted)]
    [InlineData(RunEndReason.ForceEvicted)]
    public void Constructor_ReasonNeitherTimedOutNorStalled_ThrowsArgumentOutOfRangeSayingWhich(RunEndReason reason)
    {
        Action create = () => _ = new RunTimedOutException("s", 3, TimeSpan.FromSeconds(45), reason);

        ArgumentOutOfRangeException ex = create.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("reason").Which;
        ex.Message.Should().StartWith("RunTimedOutException.Reason must be TimedOut or Stalled.");
        ex.ActualValue.Should().Be(reason);
    }
}
