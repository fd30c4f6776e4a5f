using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Store;

/// <summary>The Redis store against Garnet hosted in this process.</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetRedisRunLeaseStoreTests(GarnetServerFixture server) : RedisRunLeaseStoreTests(server)
{
}
