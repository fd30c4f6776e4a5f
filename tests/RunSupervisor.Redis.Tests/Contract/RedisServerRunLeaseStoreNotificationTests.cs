using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The notification contract against a child redis-server.</summary>
[Collection(RedisServerCollection.Name)]
[RequiresRedisServer]
public sealed class RedisServerRunLeaseStoreNotificationTests(RedisServerFixture server) : RunLeaseStoreNotificationTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
