using RunSupervisor.Leasing;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// Stores on a real server the fixture owns. Each harness uses its own key and channel prefix, so tests that share the
/// server never see each other's sessions; each host gets its own connection, as separate processes would.
/// </summary>
public sealed class RedisHarness(IRedisTestServer server, TimeSpan? operationTimeout = null) : LeaseStoreHarness
{
    private readonly List<IAsyncDisposable> _owned = [];

    public string Prefix { get; } = "t" + Guid.NewGuid().ToString("N")[..12];

    public IRedisTestServer Server { get; } = server;

    public RedisRunLeaseStoreOptions Options => new()
    {
        KeyPrefix = Prefix,
        ChannelPrefix = Prefix,
        OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(2),
    };

    public static ConfigurationOptions Configuration(int port)
    {
        var options = ConfigurationOptions.Parse($"127.0.0.1:{port}");
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 1000;
        options.AsyncTimeout = 3000;
        options.SyncTimeout = 3000;
        // Reconnect quickly after a test restarts the server.
        options.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        options.ReconnectRetryPolicy = new LinearRetry(100);
        return options;
    }

    public async Task<ConnectionMultiplexer> ConnectAsync()
    {
        ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(Configuration(Server.Port));
        lock (_owned)
        {
            _owned.Add(multiplexer);
        }

        return multiplexer;
    }

    public async Task<RedisRunLeaseStore> CreateRedisStoreAsync()
    {
        var store = new RedisRunLeaseStore(await ConnectAsync(), Options);
        lock (_owned)
        {
            _owned.Insert(0, store);
        }

        return store;
    }

    public override async Task<IRunLeaseStore> CreateStoreAsync() => await CreateRedisStoreAsync();

    public override async Task RestartAsync()
    {
        await Server.StopAsync();
        await Server.StartAsync();
    }

    public override async Task DeleteLeaseAsync(string sessionId)
    {
        ConnectionMultiplexer admin = await ConnectAsync();
        await admin.GetDatabase().KeyDeleteAsync($"{Prefix}:{{{LeaseKeys.Escape(sessionId)}}}:lease");
    }

    public override async ValueTask DisposeAsync()
    {
        IAsyncDisposable[] owned;
        lock (_owned)
        {
            owned = [.. _owned];
            _owned.Clear();
        }

        foreach (IAsyncDisposable item in owned)
        {
            await item.DisposeAsync();
        }
    }
}
