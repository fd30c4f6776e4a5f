using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.DependencyInjection;

[Collection(GarnetCollection.Name)]
public sealed class RunSupervisorRedisServiceCollectionExtensionsTests(GarnetServerFixture server)
{
    [Fact]
    public async Task AddRunSupervisorRedis_RegisteredMultiplexer_RegistersTheStoreAsIRunLeaseStore()
    {
        await using ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(RedisHarness.Configuration(server.Port));
        var services = new ServiceCollection();
        services.AddSingleton<IConnectionMultiplexer>(multiplexer);
        services.AddSingleton<IRunLeaseStore>(new InMemoryRunLeaseStore());

        services.AddRunSupervisorRedis(o => o.KeyPrefix = "di-" + Guid.NewGuid().ToString("N"));
        await using ServiceProvider provider = services.BuildServiceProvider();

        IRunLeaseStore store = provider.GetRequiredService<IRunLeaseStore>();
        store.Should().BeOfType<RedisRunLeaseStore>().And.BeSameAs(provider.GetRequiredService<RedisRunLeaseStore>());
        RunLeaseAcquireResult result = await store.AcquireAsync(new RunLeaseRequest("s", "h", TimeSpan.FromSeconds(5)));
        result.IsAcquired.Should().BeTrue();
    }

    [Fact]
    public async Task AddRunSupervisorRedis_ConfigurationString_OwnsItsConnection()
    {
        var services = new ServiceCollection();
        services.AddRunSupervisorRedis($"127.0.0.1:{server.Port}", o => o.KeyPrefix = "di-" + Guid.NewGuid().ToString("N"));
        RedisRunLeaseStore store;
        await using (ServiceProvider provider = services.BuildServiceProvider())
        {
            store = provider.GetRequiredService<RedisRunLeaseStore>();
            (await store.GetOwnerAsync("nobody")).Should().BeNull();
            store.IsConnected.Should().BeTrue();
        }

        store.IsConnected.Should().BeFalse("the provider disposed the store and with it the connection it opened");
    }

    [Fact]
    public async Task AddRunSupervisorRedis_Configuration_BindsStoreAndLeaseOptions()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RunSupervisor:Redis:Configuration"] = $"127.0.0.1:{server.Port}",
            ["RunSupervisor:Redis:KeyPrefix"] = "bound",
            ["RunSupervisor:Redis:ChannelPrefix"] = "bound-ch",
            ["RunSupervisor:Redis:OperationTimeout"] = "00:00:01.5",
            ["RunSupervisor:Redis:FenceRetention"] = "1.00:00:00",
            ["RunSupervisor:Lease:LeaseTtl"] = "00:00:20",
            ["RunSupervisor:Lease:HostId"] = "gateway-7",
        }).Build();
        var services = new ServiceCollection();

        services.AddRunSupervisorRedis(configuration);
        await using ServiceProvider provider = services.BuildServiceProvider();

        RedisRunLeaseStoreOptions options = provider.GetRequiredService<IOptions<RedisRunLeaseStoreOptions>>().Value;
        options.KeyPrefix.Should().Be("bound");
        options.ChannelPrefix.Should().Be("bound-ch");
        options.OperationTimeout.Should().Be(TimeSpan.FromSeconds(1.5));
        options.FenceRetention.Should().Be(TimeSpan.FromDays(1));
        RunLeaseOptions lease = provider.GetRequiredService<IOptions<RunSupervisorOptions>>().Value.Lease;
        lease.LeaseTtl.Should().Be(TimeSpan.FromSeconds(20));
        lease.HostId.Should().Be("gateway-7");
        (await provider.GetRequiredService<IRunLeaseStore>().GetOwnerAsync("nobody")).Should().BeNull();
    }

    [Fact]
    public async Task AddRunSupervisorRedis_InvalidBoundOptions_FailsResolutionNamingTheOption()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RunSupervisor:Redis:KeyPrefix"] = "{tagged}",
            ["RunSupervisor:Redis:OperationTimeout"] = "00:05:00",
        }).Build();
        var services = new ServiceCollection();
        services.AddRunSupervisorRedis(configuration);
        await using ServiceProvider provider = services.BuildServiceProvider();

        Action resolve = () => provider.GetRequiredService<IRunLeaseStore>();

        resolve.Should().Throw<OptionsValidationException>()
            .Which.Failures.Should().HaveCount(2)
            .And.Contain(f => f.Contains("KeyPrefix", StringComparison.Ordinal))
            .And.Contain(f => f.Contains("OperationTimeout must be greater than 00:00:00 and at most 00:01:00 (was 00:05:00)", StringComparison.Ordinal));
    }

    [Fact]
    public void AddRunSupervisorRedis_BadArguments_Throw()
    {
        var services = new ServiceCollection();

        ((Action)(() => services.AddRunSupervisorRedis("  "))).Should().Throw<ArgumentException>();
        ((Action)(() => services.AddRunSupervisorRedis((IConfiguration)null!))).Should().Throw<ArgumentNullException>();
        ((Action)(() => RunSupervisorRedisServiceCollectionExtensions.AddRunSupervisorRedis(null!))).Should().Throw<ArgumentNullException>();
    }
}
