namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// A fact that needs <c>redis-server</c>: skipped with a reason when the binary is not on PATH, unless <c>CI=true</c>,
/// where a missing server must fail the run rather than hide behind a skip.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RedisServerFactAttribute : FactAttribute
{
    public RedisServerFactAttribute()
    {
        if (RedisServerFixture.ExecutablePath is null && !IsCi)
        {
            Skip = "redis-server is not on PATH (install the redis-server package; CI installs it and fails without it).";
        }
    }

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
}
