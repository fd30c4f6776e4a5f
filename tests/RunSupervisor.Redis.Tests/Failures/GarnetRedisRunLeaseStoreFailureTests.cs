using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Failures;

/// <summary>Server failures against Garnet hosted in this process (stopped by disposing it).</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetRedisRunLeaseStoreFailureTests(GarnetServerFixture server) : RedisRunLeaseStoreFailureTests(server)
{
}
