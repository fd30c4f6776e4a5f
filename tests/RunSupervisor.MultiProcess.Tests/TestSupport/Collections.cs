using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.MultiProcess.Tests.TestSupport;

/// <summary>Every test on the in-process Garnet shares one instance (some restart it).</summary>
[CollectionDefinition(Name)]
public sealed class GarnetCollection : ICollectionFixture<GarnetServerFixture>
{
    public const string Name = "Garnet (multi-process)";
}

/// <summary>Every test on the child redis-server shares one process (some restart it).</summary>
[CollectionDefinition(Name)]
public sealed class RedisServerCollection : ICollectionFixture<RedisServerFixture>
{
    public const string Name = "redis-server (multi-process)";
}
