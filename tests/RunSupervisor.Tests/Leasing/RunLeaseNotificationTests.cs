using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.Leasing;

/// <summary><see cref="RunLeaseNotification"/>: its session is never null (empty when none applies).</summary>
public sealed class RunLeaseNotificationTests
{
    [Fact]
    public void Constructor_NullSessionId_ThrowsArgumentNullException()
    {
        Action act = () => _ = new RunLeaseNotification(RunLeaseNotificationKind.Released, null!, 1);

        act.Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("sessionId");
    }
}
