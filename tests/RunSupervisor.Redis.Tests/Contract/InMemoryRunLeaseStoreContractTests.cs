using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The contract against the core's in-memory store, on the real clock: the reference the Redis store must match.</summary>
public sealed class InMemoryRunLeaseStoreContractTests : RunLeaseStoreContractTests
{
    protected override LeaseStoreHarness CreateHarness() => new InMemoryHarness();
}
