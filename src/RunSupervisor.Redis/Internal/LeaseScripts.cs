namespace RunSupervisor.Redis;

/// <summary>
/// The store's Lua scripts. Each declares in <c>KEYS</c> every key it touches (Garnet's transactional Lua locks only
/// those; Cluster routes by them), sticks to Lua 5.1 so it runs on Redis and on Garnet's Lua 5.4 alike, and formats
/// every number it stores or returns with <c>%d</c>, because a Lua 5.1 number printed with <c>tostring</c> loses digits
/// of a 16-digit token. The lease is a hash: <c>h</c> host, <c>t</c> token, <c>c</c> the host's channel, <c>n</c> the
/// acquire's nonce, <c>a</c> abort flag, <c>r</c> abort reason, <c>w</c> watched: another host has asked about the
/// session while it was held (a refused acquire, an owner query), so its release is published; a release nobody waits
/// for publishes nothing, which saves the server a message to every host and every host its handling.
/// </summary>
internal static class LeaseScripts
{
    // f: one length-prefixed message field ('-' for none). now: server time in µs and in ms.
    private const string Prelude = """
        local function f(s) if not s then return '-' end return #s .. ':' .. s end
        local function now() local t = redis.call('TIME') local s = tonumber(t[1]) local us = tonumber(t[2]) return s * 1000000 + us, s * 1000 + math.floor(us / 1000) end
        local function d(n) return string.format('%d', n) end

        """;

    /// <summary>
    /// KEYS: lease, fence. ARGV: host, ttl ms, supersede (1/0), fence retention ms, host channel, nonce, escaped session id (for the message).
    /// Returns {0, host, token, expires ms} when held; {1, token, expires ms[, old host, old token, old expires ms]} when taken.
    /// The token is max(previous + 1, server time in µs), previous being the larger of the fence and a superseded holder's
    /// token, so it keeps increasing after a restart that lost the fence, and past a holder that outlived its fence.
    /// </summary>
    public static readonly LeaseScript Acquire = new("acquire", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 'h', 't', 'c', 'w')
        local nowus, nowms = now()
        local oldexp = false
        if cur[2] then
          oldexp = d(nowms + redis.call('PTTL', KEYS[1]))
          if ARGV[3] ~= '1' then
            redis.call('HSET', KEYS[1], 'w', '1')
            return {0, cur[1], cur[2], oldexp}
          end
        end
        local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
        -- A holder renewed for longer than the fence is kept may outlive it: a supersede still tops the holder's token.
        if cur[2] and tonumber(cur[2]) > prev then prev = tonumber(cur[2]) end
        local token = nowus
        if prev + 1 > token then token = prev + 1 end
        local ts = d(token)
        local exp = d(nowms + tonumber(ARGV[2]))
        redis.call('SET', KEYS[2], ts, 'PX', ARGV[4])
        -- A superseded holder's hash goes first, so its abort flag and reason do not carry over; a free session has none.
        if cur[2] then redis.call('DEL', KEYS[1]) end
        redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', ts, 'c', ARGV[5], 'n', ARGV[6])
        -- Whoever waited for the superseded holder's release now waits for this one's.
        if cur[4] then redis.call('HSET', KEYS[1], 'w', '1') end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        if cur[2] then
          if cur[3] then redis.call('PUBLISH', cur[3], 'S' .. f(ARGV[7]) .. f(cur[2]) .. f(false) .. f(ARGV[1]) .. f(ts) .. f(exp)) end
          return {1, ts, exp, cur[1], cur[2], oldexp}
        end
        return {1, ts, exp}
        """);

    /// <summary>
    /// KEYS: lease. ARGV: token, ttl ms. Returns {0} when there is no lease; {2, host, token, expires ms} when another
    /// token holds it; {1, abort flag, '=' .. reason or ''} when renewed.
    /// </summary>
    public static readonly LeaseScript Renew = new("renew", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 'h', 't', 'a', 'r')
        if not cur[2] then return {0} end
        if cur[2] ~= ARGV[1] then
          local nowus, nowms = now()
          return {2, cur[1], cur[2], d(nowms + redis.call('PTTL', KEYS[1]))}
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        local reason = ''
        if cur[4] then reason = '=' .. cur[4] end
        return {1, cur[3] or '0', reason}
        """);

    /// <summary>
    /// KEYS: lease. ARGV: token, released channel, escaped session id. Deletes the lease if it holds the token, then publishes
    /// the release if the session was watched. Returns 1 or 0.
    /// </summary>
    public static readonly LeaseScript Release = new("release", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 't', 'w')
        if cur[1] ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1])
        if cur[2] then redis.call('PUBLISH', ARGV[2], 'R' .. f(ARGV[3]) .. f(ARGV[1]) .. f(false) .. f(false) .. f(false) .. f(false)) end
        return 1
        """);

    /// <summary>
    /// KEYS: lease. ARGV: nonce, released channel, escaped session id. Undoes an acquire whose answer never arrived: deletes the
    /// lease only if that very acquire made it. Returns the token it removed, or 0.
    /// </summary>
    public static readonly LeaseScript Compensate = new("compensate", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 'n', 't', 'w')
        if cur[1] ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1])
        if cur[3] then redis.call('PUBLISH', ARGV[2], 'R' .. f(ARGV[3]) .. f(cur[2]) .. f(false) .. f(false) .. f(false) .. f(false)) end
        return cur[2]
        """);

    /// <summary>
    /// KEYS: lease. ARGV: expected token or '', has reason (1/0), reason, escaped session id. Flags the lease for abort (the
    /// owner's next renew reads it) and tells the owner's host. Returns 1, or 0 when there is no matching lease.
    /// </summary>
    public static readonly LeaseScript Abort = new("abort", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 't', 'c')
        if not cur[1] then return 0 end
        if ARGV[1] ~= '' and cur[1] ~= ARGV[1] then return 0 end
        local reason = false
        if ARGV[2] == '1' then
          reason = ARGV[3]
          redis.call('HSET', KEYS[1], 'a', '1', 'r', reason)
        else
          redis.call('HSET', KEYS[1], 'a', '1')
          redis.call('HDEL', KEYS[1], 'r')
        end
        if cur[2] then redis.call('PUBLISH', cur[2], 'A' .. f(ARGV[4]) .. f(cur[1]) .. f(reason) .. f(false) .. f(false) .. f(false)) end
        return 1
        """);

    /// <summary>KEYS: lease. Returns {host, token, expires ms}, or nil when the session is free; marks a held session watched.</summary>
    public static readonly LeaseScript Owner = new("owner", Prelude + """
        local cur = redis.call('HMGET', KEYS[1], 'h', 't')
        if not cur[2] then return false end
        redis.call('HSET', KEYS[1], 'w', '1')
        local nowus, nowms = now()
        return {cur[1], cur[2], d(nowms + redis.call('PTTL', KEYS[1]))}
        """);
}
