using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The contract against a child redis-server.</summary>
[Collection(RedisServerCollection.Name)]
[RequiresRedisServer]
public sealed class RedisServerRunLeaseStoreContractTests(RedisServerFixture server) : RunLeaseStoreContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
