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

    private readonly string _keyPrefix;
    private readonly string _hostChannelPrefix;

    public LeaseKeys(string keyPrefix, string channelPrefix)
    {
        _keyPrefix = keyPrefix + ":{";
        _hostChannelPrefix = channelPrefix + ":host:";
        ReleasedChannel = RedisChannel.Literal(channelPrefix + ":released");
    }

    public RedisChannel ReleasedChannel { get; }

    public RedisKey Lease(string sessionId) => _keyPrefix + Escape(sessionId) + "}:lease";

    public RedisKey Fence(string sessionId) => _keyPrefix + Escape(sessionId) + "}:fence";

    public string HostChannelName(string hostId) => _hostChannelPrefix + Escape(hostId);

    public RedisChannel HostChannel(string hostId) => RedisChannel.Literal(HostChannelName(hostId));

    /// <summary>
    /// Escapes an id for a key or channel: printable ASCII stays as it is (ids stay readable in <c>redis-cli</c>) except
    /// <c>{</c>, <c>}</c> and <c>%</c>, which become <c>%XX</c>, as does every UTF-8 byte of anything else. The mapping is
    /// one to one, so two ids never share a key. The empty id becomes a lone <c>%</c> (which no escape produces) rather
    /// than <c>{}</c>, because Cluster hashes a key with an empty tag whole, which would split the session's two keys.
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

        byte[] utf8 = Encoding.UTF8.GetBytes(id);
        var builder = new StringBuilder(utf8.Length * 2);
        foreach (byte b in utf8)
        {
            if (b is >= 0x20 and < 0x7F && b != '{' && b != '}' && b != '%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(Hex[b >> 4]).Append(Hex[b & 0xF]);
            }
        }

        return builder.ToString();
    }

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
