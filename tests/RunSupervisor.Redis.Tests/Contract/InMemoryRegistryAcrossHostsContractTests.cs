using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>Registries across hosts over the core's in-memory store, on the real clock: the reference the Redis store must match.</summary>
public sealed class InMemoryRegistryAcrossHostsContractTests : RegistryAcrossHostsContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new InMemoryHarness();
}
