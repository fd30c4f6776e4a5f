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

    /// <summary>
    /// Ids with surrogates, built in code and not enumerated at discovery: an attribute's strings, and the test runner's
    /// serialized theory data, are UTF-8, which has no unpaired surrogate.
    /// </summary>
    public static TheoryData<string, string> SurrogateIds() => new()
    {
        { "s\uD800", "s%uD800" },
        { "\uDC00x", "%uDC00x" },
        { "\uDE00\uD83D", "%uDE00%uD83D" },
        { "\uD83D\uDE00", "%F0%9F%98%80" },
        { "\uDE00\uD83D ü \uDBFF", "%uDE00%uD83D %C3%BC %uDBFF" },
    };

    [Theory]
    [MemberData(nameof(SurrogateIds), DisableDiscoveryEnumeration = true)]
    public void Escape_UnpairedSurrogate_GetsAnEscapeOfItsOwnWhereAPairIsUtf8(string id, string expected)
    {
        // An unpaired surrogate has no UTF-8 form: encoding it would make it U+FFFD, the same bytes as a real U+FFFD.
        LeaseKeys.Escape(id).Should().Be(expected);
    }

    [Fact]
    public void Escape_DistinctIds_NeverCollide()
    {
        string[] ids = ["{", "%7B", "%", "%25", "", "}", "%7D", "a{b", "a%7Bb", "ü", "%C3%BC", "s\uD800", "s\uDC00", "s\uFFFD", "s%uD800", "\uD800\uDC00", "\uDC00\uD800"];

        ids.Select(LeaseKeys.Escape).Should().OnlyHaveUniqueItems();
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("")]
    [InlineData("%")]
    [InlineData("{x}:100%")]
    [InlineData("a\nb\u0000")]
    [InlineData("日本語{:}🙂")]
    [InlineData("%uD800")]
    public void Unescape_WhatEscapeMade_GivesTheIdBack(string id)
    {
        LeaseKeys.Unescape(LeaseKeys.Escape(id)).Should().Be(id);
    }

    [Theory]
    [MemberData(nameof(SurrogateIds), DisableDiscoveryEnumeration = true)]
    public void Unescape_AnIdWithSurrogates_GivesTheIdBack(string id, string escaped)
    {
        LeaseKeys.Unescape(escaped).Should().Be(id);
    }

    [Theory]
    [InlineData("%")]
    [InlineData("a%")]
    [InlineData("a%4")]
    [InlineData("%ZZ")]
    [InlineData("%uD8")]
    [InlineData("%u0041")]
    [InlineData("%C3")]
    [InlineData("%FF")]
    public void Unescape_NotAnEscape_GivesNullOrTheEmptyId(string escaped)
    {
        string? id = LeaseKeys.Unescape(escaped);

        if (escaped == "%")
        {
            id.Should().BeEmpty("a lone % is the empty id");
        }
        else
        {
            id.Should().BeNull("an unfinished escape, an escaped non-surrogate unit or bytes that are not UTF-8 are not something Escape makes");
        }
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
        keys.HostChannelOnServer("h").Should().Be("c:host:h");
        keys.ReleasedChannelOnServer.Should().Be("c:released");
    }

    [Fact]
    public void Channels_ConnectionWithAChannelPrefix_ScriptsPublishToThePrefixedNamesTheClientSubscribesTo()
    {
        var keys = new LeaseKeys("k", "c", connectionChannelPrefix: "app:");

        keys.HostChannel("h").Should().Be(RedisChannel.Literal("c:host:h"), "the client adds its prefix when it subscribes");
        keys.HostChannelOnServer("h").Should().Be("app:c:host:h");
        keys.ReleasedChannelOnServer.Should().Be("app:c:released");
    }

    private static string HashTag(string key)
    {
        int open = key.IndexOf('{', StringComparison.Ordinal);
        int close = key.IndexOf('}', open + 1);
        return key[(open + 1)..close];
    }
}
