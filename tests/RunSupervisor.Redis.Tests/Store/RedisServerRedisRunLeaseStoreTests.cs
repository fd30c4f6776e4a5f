using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Store;

/// <summary>The Redis store against a child redis-server.</summary>
[Collection(RedisServerCollection.Name)]
[RequiresRedisServer]
public sealed class RedisServerRedisRunLeaseStoreTests(RedisServerFixture server) : RedisRunLeaseStoreTests(server)
{
}
