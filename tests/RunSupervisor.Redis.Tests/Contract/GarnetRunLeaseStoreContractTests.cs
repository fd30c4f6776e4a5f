using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The contract against Garnet hosted in this process.</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetRunLeaseStoreContractTests(GarnetServerFixture server) : RunLeaseStoreContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
