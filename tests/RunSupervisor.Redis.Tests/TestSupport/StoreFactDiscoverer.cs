using Xunit.Abstractions;
using Xunit.Sdk;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Discovers <see cref="StoreFactAttribute"/> cases; skips those of a <see cref="RequiresRedisServerAttribute"/> class when redis-server is missing outside CI.</summary>
public sealed class StoreFactDiscoverer(IMessageSink diagnosticMessageSink) : FactDiscoverer(diagnosticMessageSink)
{
    private readonly IMessageSink _sink = diagnosticMessageSink;

    public override IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        bool needsRedis = testMethod.TestClass.Class.GetCustomAttributes(typeof(RequiresRedisServerAttribute)).Any();
        if (needsRedis && RedisServerFixture.ExecutablePath is null && !RedisServerFactAttribute.IsCi)
        {
            return
            [
                new XunitSkippedDataRowTestCase(_sink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod,
                    "redis-server is not on PATH (install the redis-server package; CI installs it and fails without it)."),
            ];
        }

        return base.Discover(discoveryOptions, testMethod, factAttribute);
    }
}
