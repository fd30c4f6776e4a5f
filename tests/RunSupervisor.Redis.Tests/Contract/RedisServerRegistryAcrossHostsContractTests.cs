using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>Registries across hosts over a child redis-server.</summary>
[Collection(RedisServerCollection.Name)]
[RequiresRedisServer]
public sealed class RedisServerRegistryAcrossHostsContractTests(RedisServerFixture server) : RegistryAcrossHostsContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
