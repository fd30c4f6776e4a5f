using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Failures;

/// <summary>Server failures against a child redis-server (killed).</summary>
[Collection(RedisServerCollection.Name)]
[RequiresRedisServer]
public sealed class RedisServerRedisRunLeaseStoreFailureTests(RedisServerFixture server) : RedisRunLeaseStoreFailureTests(server)
{
}
