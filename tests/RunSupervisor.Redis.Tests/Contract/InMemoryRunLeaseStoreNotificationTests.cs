using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>The notification contract against the core's in-memory store.</summary>
public sealed class InMemoryRunLeaseStoreNotificationTests : RunLeaseStoreNotificationTests
{
    protected override LeaseStoreHarness CreateHarness() => new InMemoryHarness();
}
