namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Every test on the child redis-server shares one process and runs one at a time (some restart it).</summary>
[CollectionDefinition(Name)]
public sealed class RedisServerCollection : ICollectionFixture<RedisServerFixture>
{
    public const string Name = "redis-server";
}
