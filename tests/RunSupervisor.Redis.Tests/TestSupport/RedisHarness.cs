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
    private int _down;

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

    public override async Task TakeDownAsync()
    {
        Volatile.Write(ref _down, 1);
        await Server.StopAsync();
    }

    public override async Task BringBackAsync()
    {
        await Server.StartAsync();
        Volatile.Write(ref _down, 0);
    }

    public override Task WaitUntilSubscribedAsync(string hostId, TimeSpan within) => WaitUntilSubscribedAsync(hostId, within, channelPrefix: string.Empty);

    /// <summary>Waits until a store whose connection adds <paramref name="channelPrefix"/> to its channels has subscribed for <paramref name="hostId"/>.</summary>
    public async Task WaitUntilSubscribedAsync(string hostId, TimeSpan within, string channelPrefix)
    {
        ConnectionMultiplexer admin = await ConnectAsync();
        IServer node = admin.GetServer(admin.GetEndPoints()[0]);
        RedisChannel channel = RedisChannel.Literal(new LeaseKeys(Prefix, Prefix, channelPrefix).HostChannelOnServer(hostId));
        DateTime deadline = DateTime.UtcNow + within;
        while (await node.SubscriptionSubscriberCountAsync(channel) == 0)
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Nothing subscribed to '{channel}' within {within}.");
            }

            await Task.Delay(20);
        }

        // The server counts the subscriber once it has subscribed; the client adds the host's observers when it reads the
        // confirmation, a moment later, and a message that came in between would find nobody to deliver to.
        await Task.Delay(100);
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _down, 0) != 0)
        {
            // The server is shared with the rest of its collection: never leave it down, whatever the test did.
            await Server.StartAsync();
        }

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
