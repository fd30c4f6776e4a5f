using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLeaseRenewResult"/>: every answer names the lease it is about.</summary>
public sealed class RunLeaseRenewResultTests
{
    [Fact]
    public void Constructor_NullLease_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLeaseRenewResult(null!, RunLeaseRenewStatus.Renewed);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("lease");
    }
}
