using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The notification contract against Garnet hosted in this process.</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetRunLeaseStoreNotificationTests(GarnetServerFixture server) : RunLeaseStoreNotificationTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
