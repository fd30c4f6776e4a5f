using System.Text;
using StackExchange.Redis;

namespace RunSupervisor.Redis;

/// <summary>
/// Key and channel names. A session's two keys share one hash tag (<c>{…}</c>), so Redis Cluster puts them in one slot
/// and a script may touch both; the id inside the tag is escaped so that no session id can close the tag early.
/// </summary>
internal sealed class LeaseKeys
{
    private const string Hex = "0123456789ABCDEF";

    // Throws on bytes that are not UTF-8, so a corrupted message is refused rather than read with replacement characters.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly string _keyPrefix;
    private readonly string _hostChannelPrefix;
    private readonly string _connectionChannelPrefix;

    /// <param name="keyPrefix">The store's key prefix.</param>
    /// <param name="channelPrefix">The store's channel prefix.</param>
    /// <param name="connectionChannelPrefix">
    /// The connection's own channel prefix (StackExchange.Redis <c>channelPrefix</c>), or empty: the client adds it to
    /// every channel it subscribes to, so the scripts, which publish by name on the server, must add it too.
    /// </param>
    public LeaseKeys(string keyPrefix, string channelPrefix, string connectionChannelPrefix = "")
    {
        _keyPrefix = keyPrefix + ":{";
        _hostChannelPrefix = channelPrefix + ":host:";
        _connectionChannelPrefix = connectionChannelPrefix;
        ReleasedChannel = RedisChannel.Literal(channelPrefix + ":released");
        ReleasedChannelOnServer = connectionChannelPrefix + channelPrefix + ":released";
    }

    /// <summary>Gets the channel every release is announced on, as the client subscribes to it (without the connection's prefix).</summary>
    public RedisChannel ReleasedChannel { get; }

    /// <summary>Gets the name a script publishes releases to: <see cref="ReleasedChannel"/> with the connection's prefix.</summary>
    public string ReleasedChannelOnServer { get; }

    public RedisKey Lease(string sessionId) => _keyPrefix + Escape(sessionId) + "}:lease";

    public RedisKey Fence(string sessionId) => _keyPrefix + Escape(sessionId) + "}:fence";

    public string HostChannelName(string hostId) => _hostChannelPrefix + Escape(hostId);

    /// <summary>Gets the name a script publishes to for <paramref name="hostId"/>: <see cref="HostChannelName(string)"/> with the connection's prefix.</summary>
    public string HostChannelOnServer(string hostId) => _connectionChannelPrefix + HostChannelName(hostId);

    public RedisChannel HostChannel(string hostId) => RedisChannel.Literal(HostChannelName(hostId));

    /// <summary>
    /// Escapes an id for a key, a channel or a message: printable ASCII stays as it is (ids stay readable in
    /// <c>redis-cli</c>) except <c>{</c>, <c>}</c> and <c>%</c>, which become <c>%XX</c>, as does every UTF-8 byte of
    /// anything else; an unpaired surrogate, which has no UTF-8 form, becomes <c>%uXXXX</c> (no byte escape has a
    /// <c>u</c> after its <c>%</c>). The mapping is one to one (<see cref="Unescape(string)"/> inverts it), so two ids
    /// never share a key. The empty id becomes a lone <c>%</c> (which no escape produces) rather than <c>{}</c>, because
    /// Cluster hashes a key with an empty tag whole, which would split the session's two keys.
    /// </summary>
    public static string Escape(string id)
    {
        if (id.Length == 0)
        {
            return "%";
        }

        if (!NeedsEscape(id))
        {
            return id;
        }

        var builder = new StringBuilder(id.Length * 3);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < id.Length; i++)
        {
            char c = id[i];
            if (c is >= ' ' and < (char)0x7F && c != '{' && c != '}' && c != '%')
            {
                builder.Append(c);
                continue;
            }

            Rune rune;
            if (char.IsHighSurrogate(c) && i + 1 < id.Length && char.IsLowSurrogate(id[i + 1]))
            {
                rune = new Rune(c, id[++i]);
            }
            else if (char.IsSurrogate(c))
            {
                builder.Append("%u").Append(Hex[c >> 12]).Append(Hex[(c >> 8) & 0xF]).Append(Hex[(c >> 4) & 0xF]).Append(Hex[c & 0xF]);
                continue;
            }
            else
            {
                rune = new Rune(c);
            }

            int length = rune.EncodeToUtf8(utf8);
            foreach (byte b in utf8[..length])
            {
                builder.Append('%').Append(Hex[b >> 4]).Append(Hex[b & 0xF]);
            }
        }

        return builder.ToString();
    }

    /// <summary>Turns what <see cref="Escape(string)"/> made back into the id.</summary>
    /// <param name="escaped">An escaped id.</param>
    /// <returns>The id, or <see langword="null"/> if <paramref name="escaped"/> is not something <see cref="Escape(string)"/> makes.</returns>
    public static string? Unescape(string escaped)
    {
        if (escaped == "%")
        {
            return string.Empty;
        }

        int percent = escaped.IndexOf('%', StringComparison.Ordinal);
        if (percent < 0)
        {
            return escaped;
        }

        var builder = new StringBuilder(escaped.Length);
        builder.Append(escaped, 0, percent);
        var bytes = new List<byte>(8);
        for (int i = percent; i < escaped.Length;)
        {
            if (escaped[i] != '%')
            {
                if (!Flush())
                {
                    return null;
                }

                builder.Append(escaped[i++]);
            }
            else if (i + 5 < escaped.Length && escaped[i + 1] == 'u' && TryHex(escaped.AsSpan(i + 2, 4), out int unit) && char.IsSurrogate((char)unit))
            {
                if (!Flush())
                {
                    return null;
                }

                builder.Append((char)unit);
                i += 6;
            }
            else if (i + 2 < escaped.Length && TryHex(escaped.AsSpan(i + 1, 2), out int b))
            {
                bytes.Add((byte)b);
                i += 3;
            }
            else
            {
                return null;
            }
        }

        return Flush() ? builder.ToString() : null;

        bool Flush()
        {
            if (bytes.Count == 0)
            {
                return true;
            }

            try
            {
                builder.Append(StrictUtf8.GetString(bytes.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                return false;
            }

            bytes.Clear();
            return true;
        }
    }

    private static bool TryHex(ReadOnlySpan<char> digits, out int value) =>
        int.TryParse(digits, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out value);

    private static bool NeedsEscape(string id)
    {
        foreach (char c in id)
        {
            if (c is < ' ' or >= (char)0x7F or '{' or '}' or '%')
            {
                return true;
            }
        }

        return false;
    }
}
