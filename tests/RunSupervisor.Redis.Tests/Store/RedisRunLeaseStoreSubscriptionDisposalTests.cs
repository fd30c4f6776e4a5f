using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.Store;

/// <summary>A store disposed while a subscribe is on the wire leaves nothing subscribed on a connection it does not own.</summary>
[Collection(GarnetCollection.Name)]
public sealed class RedisRunLeaseStoreSubscriptionDisposalTests(GarnetServerFixture server) : IAsyncLifetime
{
    private readonly RedisHarness _harness = new(server);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Fact]
    public async Task DisposeAsync_WhileASubscribeIsInFlight_LeavesNothingSubscribed()
    {
        // The application's shared connection (AddRunSupervisorRedis() on a registered IConnectionMultiplexer): the
        // store does not own it, so it stays open after the store is disposed. Its SUBSCRIBE calls are held until the
        // test lets them through, which stands for the server's round trip.
        ConnectionMultiplexer shared = await _harness.ConnectAsync();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscribing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        IConnectionMultiplexer held = SlowSubscribeMultiplexer.Wrap(shared, gate.Task, subscribing);
        var store = new RedisRunLeaseStore(held, _harness.Options);

        // The registry makes this call in the background of its first start: a host that stops right after that
        // disposes the store while it is in flight.
        ValueTask<IAsyncDisposable> pending = store.SubscribeAsync("host-a", new RecordingObserver());
        await subscribing.Task.WaitAsync(TimeSpan.FromSeconds(5));
        await store.DisposeAsync();
        gate.SetResult();

        IAsyncDisposable? subscription = null;
        try
        {
            subscription = await pending.AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is ObjectDisposedException or RunLeaseUnavailableException)
        {
            // Either is fine: the store was disposed while the call was in flight.
        }

        if (subscription is not null)
        {
            // What the registry does with a handle that arrives after its disposal (ActiveRunRegistry.SubscribeAsync).
            await subscription.DisposeAsync();
        }

        ConnectionMultiplexer admin = await _harness.ConnectAsync();
        IServer node = admin.GetServer(admin.GetEndPoints()[0]);
        var keys = new LeaseKeys(_harness.Prefix, _harness.Prefix);
        RedisChannel host = RedisChannel.Literal(keys.HostChannelOnServer("host-a"));
        RedisChannel released = RedisChannel.Literal(keys.ReleasedChannelOnServer);

        // The unsubscribes are sent without waiting for their answers: give them until the server has them (bounded).
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); waited.Elapsed < TimeSpan.FromSeconds(5); await Task.Delay(20))
        {
            if (await node.SubscriptionSubscriberCountAsync(host) == 0 && await node.SubscriptionSubscriberCountAsync(released) == 0)
            {
                break;
            }
        }

        (await node.SubscriptionSubscriberCountAsync(host)).Should().Be(0, "a disposed store must not stay subscribed to its host's channel");
        (await node.SubscriptionSubscriberCountAsync(released)).Should().Be(0, "a disposed store must not stay subscribed to the released channel");
    }
}
