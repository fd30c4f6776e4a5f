using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.Internal;

public sealed class LeaseKeysTests
{
    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("user:42:thread", "user:42:thread")]
    [InlineData("{x}", "%7Bx%7D")]
    [InlineData("100%", "100%25")]
    [InlineData("ü", "%C3%BC")]
    [InlineData("a\nb", "a%0Ab")]
    [InlineData("", "%")]
    public void Escape_Id_KeepsPrintableAsciiAndEscapesTheRest(string id, string expected)
    {
        LeaseKeys.Escape(id).Should().Be(expected);
    }

    [Fact]
    public void Escape_DistinctIds_NeverCollide()
    {
        string[] ids = ["{", "%7B", "%", "%25", "", "}", "%7D", "a{b", "a%7Bb", "ü", "%C3%BC"];

        ids.Select(LeaseKeys.Escape).Should().OnlyHaveUniqueItems();
    }

    [Theory]
    [InlineData("}{")]
    [InlineData("{}")]
    [InlineData("a}b{c}")]
    [InlineData("")]
    [InlineData("日本語{:}🙂")]
    public void Lease_AnyId_HasOneWellFormedHashTagSharedWithTheFence(string id)
    {
        var keys = new LeaseKeys("rs", "rs");

        string lease = keys.Lease(id).ToString();
        string fence = keys.Fence(id).ToString();

        lease.Count(c => c == '{').Should().Be(1);
        lease.Count(c => c == '}').Should().Be(1);
        lease.Should().StartWith("rs:{").And.EndWith("}:lease");
        HashTag(lease).Should().NotBeEmpty().And.Be(HashTag(fence));
    }

    [Fact]
    public void Channels_HostAndReleased_UseTheChannelPrefix()
    {
        var keys = new LeaseKeys("k", "c");

        keys.HostChannelName("host {1}").Should().Be("c:host:host %7B1%7D");
        keys.ReleasedChannel.Should().Be(RedisChannel.Literal("c:released"));
    }

    private static string HashTag(string key)
    {
        int open = key.IndexOf('{', StringComparison.Ordinal);
        int close = key.IndexOf('}', open + 1);
        return key[(open + 1)..close];
    }
}
