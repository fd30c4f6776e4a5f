using Xunit.Sdk;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// A fact of a test class that may run against <c>redis-server</c>: when the concrete class is marked
/// <see cref="RequiresRedisServerAttribute"/> and the binary is missing (and <c>CI</c> is not <c>true</c>), the case is
/// reported skipped with the reason, instead of failing. xunit 2 has no runtime skip, so the decision is made at discovery.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
[XunitTestCaseDiscoverer("RunSupervisor.Redis.Tests.TestSupport.StoreFactDiscoverer", "RunSupervisor.Redis.Tests")]
public sealed class StoreFactAttribute : FactAttribute
{
}
