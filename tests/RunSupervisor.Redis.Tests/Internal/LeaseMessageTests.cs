using System.Text;
using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.Internal;

public sealed class LeaseMessageTests
{
    [Fact]
    public void TryParse_Superseded_BuildsTheNewOwner()
    {
        byte[] payload = Encoding.UTF8.GetBytes("S" + Field("s:{1}ü") + Field("10") + "-" + Field("host-b") + Field("11") + Field("1700000000000"));

        LeaseMessage.TryParse(payload, out LeaseMessage message).Should().BeTrue();
        RunLeaseNotification notification = message.ToNotification()!;

        notification.Kind.Should().Be(RunLeaseNotificationKind.Superseded);
        notification.SessionId.Should().Be("s:{1}ü");
        notification.FencingToken.Should().Be(10);
        notification.Reason.Should().BeNull();
        notification.NewOwner!.HostId.Should().Be("host-b");
        notification.NewOwner.FencingToken.Should().Be(11);
        notification.NewOwner.ExpiresAt.Should().Be(DateTimeOffset.FromUnixTimeMilliseconds(1700000000000));
    }

    [Fact]
    public void TryParse_AbortWithReasonHoldingColonsAndDigits_KeepsTheReason()
    {
        byte[] payload = Encoding.UTF8.GetBytes("A" + Field("s") + Field("5") + Field("3:x:-") + "---");

        LeaseMessage.TryParse(payload, out LeaseMessage message).Should().BeTrue();

        message.ToNotification()!.Reason.Should().Be("3:x:-");
    }

    [Theory]
    [InlineData("")]
    [InlineData("R")]
    [InlineData("R5:abc")]
    [InlineData("R1:s1:x----")]
    [InlineData("R1:s1:5-----extra")]
    [InlineData("R99:s1:5----")]
    public void TryParse_Malformed_ReturnsFalse(string text)
    {
        LeaseMessage.TryParse(Encoding.UTF8.GetBytes(text), out _).Should().BeFalse();
    }

    [Fact]
    public void ToNotification_UnknownKind_ReturnsNull()
    {
        LeaseMessage.TryParse(Encoding.UTF8.GetBytes("X1:s1:5----"), out LeaseMessage message).Should().BeTrue();

        message.ToNotification().Should().BeNull();
    }

    private static string Field(string value) => Encoding.UTF8.GetByteCount(value) + ":" + value;
}
