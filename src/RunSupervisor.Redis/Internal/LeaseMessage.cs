using System.Globalization;
using System.Text;
using RunSupervisor.Leasing;

namespace RunSupervisor.Redis;

/// <summary>
/// The pub/sub payload the scripts publish: one kind byte (<c>A</c> abort, <c>S</c> superseded, <c>R</c> released)
/// then six fields, each <c>&lt;byte length&gt;:&lt;bytes&gt;</c> or <c>-</c> for none: session (escaped as in keys), token, reason, new
/// owner's host, new owner's token, new owner's expiry (Unix ms). Length prefixes, because ids and reasons may hold any
/// character; built with plain string concatenation in Lua, because Garnet's Lua has no cjson.
/// </summary>
internal readonly record struct LeaseMessage(char Kind, string SessionId, long Token, string? Reason, string? NewHost, long NewToken, long NewExpiresAtMs)
{
    public static bool TryParse(ReadOnlySpan<byte> payload, out LeaseMessage message)
    {
        message = default;
        if (payload.Length < 1)
        {
            return false;
        }

        char kind = (char)payload[0];
        payload = payload[1..];
        if (!TryField(ref payload, out string? session) || session is null
            || !TryField(ref payload, out string? token)
            || !TryField(ref payload, out string? reason)
            || !TryField(ref payload, out string? newHost)
            || !TryField(ref payload, out string? newToken)
            || !TryField(ref payload, out string? newExpires)
            || !payload.IsEmpty)
        {
            return false;
        }

        if (!TryLong(token, out long tokenValue) || !TryLong(newToken, out long newTokenValue) || !TryLong(newExpires, out long newExpiresValue))
        {
            return false;
        }

        // The scripts publish the session id escaped (LeaseKeys.Escape), so that an id with an unpaired surrogate, which
        // has no UTF-8 form, arrives as itself.
        if (LeaseKeys.Unescape(session) is not { } sessionId)
        {
            return false;
        }

        message = new LeaseMessage(kind, sessionId, tokenValue, reason, newHost, newTokenValue, newExpiresValue);
        return true;
    }

    public RunLeaseNotification? ToNotification()
    {
        switch (Kind)
        {
            case 'A':
                return new RunLeaseNotification(RunLeaseNotificationKind.AbortRequested, SessionId, Token, Reason);
            case 'R':
                return new RunLeaseNotification(RunLeaseNotificationKind.Released, SessionId, Token);
            case 'S' when NewHost is not null:
                DateTimeOffset? expiresAt = NewExpiresAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(NewExpiresAtMs) : null;
                return new RunLeaseNotification(RunLeaseNotificationKind.Superseded, SessionId, Token, Reason, new RunLeaseInfo(SessionId, NewHost, NewToken, expiresAt));
            default:
                return null;
        }
    }

    private static bool TryLong(string? text, out long value)
    {
        value = 0;
        return text is null || long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
    }

    private static bool TryField(ref ReadOnlySpan<byte> payload, out string? value)
    {
        value = null;
        if (payload.IsEmpty)
        {
            return false;
        }

        if (payload[0] == (byte)'-')
        {
            payload = payload[1..];
            return true;
        }

        int colon = payload.IndexOf((byte)':');
        if (colon <= 0 || !int.TryParse(payload[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out int length) || length > payload.Length - colon - 1)
        {
            return false;
        }

        value = Encoding.UTF8.GetString(payload.Slice(colon + 1, length));
        payload = payload[(colon + 1 + length)..];
        return true;
    }
}
