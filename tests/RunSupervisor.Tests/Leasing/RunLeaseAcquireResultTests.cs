using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLeaseAcquireResult"/>: an acquired answer always carries its lease, a held one its owner.</summary>
public sealed class RunLeaseAcquireResultTests
{
    [Fact]
    public void Acquired_NullLease_ThrowsArgumentNullException()
    {
        Action act = () => RunLeaseAcquireResult.Acquired(null!);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("lease");
    }

    [Fact]
    public void Held_NullOwner_ThrowsArgumentNullException()
    {
        Action act = () => RunLeaseAcquireResult.Held(null!);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("owner");
    }
}
