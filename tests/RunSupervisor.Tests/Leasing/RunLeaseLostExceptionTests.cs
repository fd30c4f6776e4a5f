using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// <see cref="RunLeaseLostException"/>: the message names the run, the session, the fencing token and what happened to
/// the lease, or says it could not be confirmed when nothing more is known.
/// </summary>
public sealed class RunLeaseLostExceptionTests
{
    [Fact]
    public void Constructor_WithDetail_MessageNamesRunSessionTokenAndDetail()
    {
        using var cts = new CancellationTokenSource();

        var ex = new RunLeaseLostException("s", 7, 42, "taken over by host 'b'", cts.Token);

        ex.Message.Should().Be("Run 7 for session 's' (fencing token 42) lost its lease: taken over by host 'b'.");
        ex.SessionId.Should().Be("s");
        ex.RunId.Should().Be(7);
        ex.FencingToken.Should().Be(42);
        ex.Detail.Should().Be("taken over by host 'b'");
        ex.CancellationToken.Should().Be(cts.Token);
    }

    [Fact]
    public void Constructor_NullDetail_MessageSaysTheLeaseCouldNotBeConfirmed()
    {
        var ex = new RunLeaseLostException("s", 7, 42, detail: null);

        ex.Message.Should().Be("Run 7 for session 's' (fencing token 42) lost its lease: the lease could not be confirmed.");
        ex.Detail.Should().BeNull();
    }
}
