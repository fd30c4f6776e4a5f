using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLeaseInfo"/>: an owner always names its session and host.</summary>
public sealed class RunLeaseInfoTests
{
    [Fact]
    public void Constructor_NullSessionId_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLeaseInfo(null!, "h", 1);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("sessionId");
    }

    [Fact]
    public void Constructor_NullHostId_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLeaseInfo("s", null!, 1);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("hostId");
    }

    [Fact]
    public void ToString_Always_NamesSessionHostAndToken()
    {
        var owner = new RunLeaseInfo("s", "h", 7);

        owner.ToString().Should().Be("s held by h (token 7)");
    }
}
