using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>Registries across hosts over Garnet hosted in this process.</summary>
[Collection(GarnetCollection.Name)]
public sealed class GarnetRegistryAcrossHostsContractTests(GarnetServerFixture server) : RegistryAcrossHostsContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new RedisHarness(server);
}
