using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLease"/>: it always names a session and a host, and carries a positive fencing token.</summary>
public sealed class RunLeaseTests
{
    [Fact]
    public void Constructor_NullSessionId_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLease(null!, "h", 1);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("sessionId");
    }

    [Fact]
    public void Constructor_NullHostId_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLease("s", null!, 1);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("hostId");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Constructor_NonPositiveFencingToken_ThrowsArgumentOutOfRangeException(long fencingToken)
    {
        Action act = () => _ = new RunLease("s", "h", fencingToken);

        act.Should().ThrowExactly<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("fencingToken");
    }

    [Fact]
    public void ToString_Always_NamesSessionHostAndToken()
    {
        var lease = new RunLease("s", "h", 7);

        lease.ToString().Should().Be("s held by h (token 7)");
    }
}
