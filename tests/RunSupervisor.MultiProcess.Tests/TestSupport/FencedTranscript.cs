using StackExchange.Redis;

namespace RunSupervisor.MultiProcess.Tests.TestSupport;

/// <summary>
/// A resource that checks fencing tokens itself: an append-only transcript whose writes carry the writer's token and are
/// refused when a larger one has written before. One script on the server, so the check and the write are one step.
/// </summary>
internal sealed class FencedTranscript(string key)
{
    // KEYS[1] = the transcript (a hash holding the fence), KEYS[2] = its log; ARGV[1] = token, ARGV[2] = entry.
    // Both keys are named by the caller, so the script also runs where keys must be declared (Cluster, Garnet).
    private const string AppendScript = """
        local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
        if tonumber(ARGV[1]) < fence then return 0 end
        redis.call('HSET', KEYS[1], 'fence', ARGV[1])
        redis.call('RPUSH', KEYS[2], ARGV[2])
        return 1
        """;

    public RedisKey Key { get; } = key;

    public RedisKey LogKey { get; } = key + ":log";

    /// <summary>Appends the entry if no larger token has written; <see langword="false"/> when refused.</summary>
    public async Task<bool> TryAppendAsync(IDatabase database, long fencingToken, string entry)
        => (long)await database.ScriptEvaluateAsync(AppendScript, [Key, LogKey], [fencingToken, entry]) == 1;

    public async Task<long> ReadFenceAsync(IDatabase database) => (long)await database.HashGetAsync(Key, "fence");

    public async Task<string[]> ReadLogAsync(IDatabase database) => [.. (await database.ListRangeAsync(LogKey)).Select(static e => e.ToString())];
}
