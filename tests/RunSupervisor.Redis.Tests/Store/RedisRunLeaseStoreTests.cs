using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.Store;

/// <summary>
/// What only the Redis store has, against a real server: tokens minted from the fence and the holder together, and
/// notifications on a connection that adds a channel prefix of its own. The shared behaviour of every store is in the
/// contract suites; an acquire whose caller gave up is in the failure suites.
/// </summary>
public abstract class RedisRunLeaseStoreTests(IRedisTestServer server) : IAsyncLifetime
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(30);

    private readonly RedisHarness _harness = new(server);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [StoreFact]
    public async Task AcquireAsync_SupersedeOfAHolderThatOutlivedItsFence_TokenStillLargerThanTheHolders()
    {
        RedisRunLeaseStore a = await _harness.CreateRedisStoreAsync();
        RedisRunLeaseStore b = await _harness.CreateRedisStoreAsync();
        IDatabase admin = (await _harness.ConnectAsync()).GetDatabase();
        string session = "fence-" + Guid.NewGuid().ToString("N");
        var keys = new LeaseKeys(_harness.Prefix, _harness.Prefix);
        RunLease minted = (await a.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl))).Lease!;

        // The holder's token was minted while the server's clock read 5 s ahead of where it reads now (a clock stepped
        // back, or a failover to a replica whose clock lags), and renewals kept the lease past the fence's retention,
        // which only an acquire refreshes. Both simulated: the stored token moved 5 s on, the fence deleted.
        long holderToken = minted.FencingToken + 5_000_000;
        await admin.HashSetAsync(keys.Lease(session), "t", holderToken);
        await admin.KeyDeleteAsync(keys.Fence(session));
        (await a.RenewAsync([new RunLease(session, "host-a", holderToken)], Ttl))[0].Status.Should().Be(RunLeaseRenewStatus.Renewed);

        RunLeaseAcquireResult taken = await b.AcquireAsync(new RunLeaseRequest(session, "host-b", Ttl, supersede: true));

        taken.Superseded!.FencingToken.Should().Be(holderToken);
        taken.Lease!.FencingToken.Should().BeGreaterThan(holderToken, "the new owner's writes must fence the old owner's out");
    }

    [StoreFact]
    public async Task Notifications_ConnectionWithAChannelPrefixOfItsOwn_StillDelivered()
    {
        ConfigurationOptions configuration = RedisHarness.Configuration(server.Port);
        configuration.ChannelPrefix = RedisChannel.Literal("app:");
        using ConnectionMultiplexer prefixed = await ConnectionMultiplexer.ConnectAsync(configuration);
        await using var owner = new RedisRunLeaseStore(prefixed, _harness.Options);
        RedisRunLeaseStore other = await _harness.CreateRedisStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await owner.SubscribeAsync("host-a", observer);
        await _harness.WaitUntilSubscribedAsync("host-a", TimeSpan.FromSeconds(5), channelPrefix: "app:");
        string session = "prefixed-" + Guid.NewGuid().ToString("N");
        RunLease lease = (await owner.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl))).Lease!;

        (await other.RequestAbortAsync(session, lease.FencingToken, "stop")).Should().BeTrue();

        RunLeaseNotification aborted = await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested, TimeSpan.FromSeconds(5));
        aborted.SessionId.Should().Be(session);
    }
}
