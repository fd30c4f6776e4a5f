using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace RunSupervisor.Redis;

/// <summary>
/// One Lua script, sent by its SHA1 (<c>EVALSHA</c>) so that a renew batch of thousands of leases carries a few bytes
/// per lease instead of the script. When the server does not know the script (first use, after a restart or a
/// <c>SCRIPT FLUSH</c>) the call is repeated once with the source (<c>EVAL</c>), which also caches it there.
/// </summary>
internal sealed class LeaseScript
{
    [SuppressMessage("Security", "CA5350:Do Not Use Weak Cryptographic Algorithms", Justification = "SHA1 is how Redis names a cached script (EVALSHA); it protects nothing.")]
    public LeaseScript(string name, string source)
    {
        Name = name;
        Source = source;
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));
    }

    public string Name { get; }

    public string Source { get; }

    public byte[] Sha1 { get; }

    public Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values)
    {
        Task<RedisResult> bySha = database.ScriptEvaluateAsync(Sha1, keys, values, CommandFlags.DemandMaster);
        return bySha.IsCompletedSuccessfully ? bySha : WithFallback(bySha, database, keys, values);
    }

    private async Task<RedisResult> WithFallback(Task<RedisResult> bySha, IDatabaseAsync database, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return await bySha.ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(Source, keys, values, CommandFlags.DemandMaster).ConfigureAwait(false);
        }
    }
}
