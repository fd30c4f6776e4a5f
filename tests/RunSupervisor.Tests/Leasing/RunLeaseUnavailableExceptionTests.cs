using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLeaseUnavailableException"/>: the message names the session, and the cause when there is one.</summary>
public sealed class RunLeaseUnavailableExceptionTests
{
    [Fact]
    public void Constructor_WithInnerException_MessageAppendsItsMessage()
    {
        var inner = new TimeoutException("no answer in 2 s");

        var ex = new RunLeaseUnavailableException("s", inner);

        ex.Message.Should().Be("The run lease store is unavailable for session 's': no answer in 2 s.");
        ex.InnerException.Should().BeSameAs(inner);
        ex.SessionId.Should().Be("s");
    }

    [Fact]
    public void Constructor_NoInnerException_MessageNamesOnlyTheSession()
    {
        var ex = new RunLeaseUnavailableException("s");

        ex.Message.Should().Be("The run lease store is unavailable for session 's'.");
        ex.InnerException.Should().BeNull();
    }
}
