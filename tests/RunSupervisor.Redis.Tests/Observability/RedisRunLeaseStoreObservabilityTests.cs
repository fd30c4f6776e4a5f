using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Leasing;
using RunSupervisor.Metrics;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.Observability;

[Collection(GarnetCollection.Name)]
public sealed class RedisRunLeaseStoreObservabilityTests(GarnetServerFixture server) : IAsyncLifetime
{
    private readonly RedisHarness _harness = new(server);
    private readonly FakeLogCollector _logs = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Fact]
    public async Task Metrics_AcquireRenewRelease_RecordRoundTripsAndCounts()
    {
        RedisRunLeaseStore store = await CreateStoreAsync();
        using var durations = new MetricCollector<double>(store.Metrics.Duration);
        using var renewed = new MetricCollector<long>(store.Metrics.Renewed);
        using var released = new MetricCollector<long>(store.Metrics.Released);
        using var lost = new MetricCollector<long>(store.Metrics.Lost);

        RunLease a = (await store.AcquireAsync(new RunLeaseRequest("m1", "h", TimeSpan.FromSeconds(10)))).Lease!;
        RunLease b = (await store.AcquireAsync(new RunLeaseRequest("m2", "h", TimeSpan.FromSeconds(10)))).Lease!;
        await _harness.DeleteLeaseAsync("m2");
        await store.RenewAsync([a, b], TimeSpan.FromSeconds(10));
        await store.ReleaseAsync(a);

        durations.GetMeasurementSnapshot().Select(m => m.Tags[RedisLeaseMetrics.OperationTag]).Should().Equal("acquire", "acquire", "renew", "release");
        durations.GetMeasurementSnapshot().Should().OnlyContain(m => m.Value > 0 && m.Value < 5);
        renewed.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(1);
        lost.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(1);
        released.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(1);
    }

    [Fact]
    public async Task Notifications_MalformedMessage_IsLoggedAndIgnored()
    {
        RedisRunLeaseStore store = await CreateStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await store.SubscribeAsync("host-a", observer);
        ConnectionMultiplexer publisher = await _harness.ConnectAsync();

        await publisher.GetSubscriber().PublishAsync(RedisChannel.Literal(_harness.Prefix + ":host:host-a"), "not a lease message");

        await WaitForLogAsync(307);
        observer.Received.Should().BeEmpty();
    }

    [Fact]
    public async Task Notifications_ObserverThrows_IsLoggedAndOthersStillReceive()
    {
        RedisRunLeaseStore store = await CreateStoreAsync();
        var healthy = new RecordingObserver();
        await using IAsyncDisposable bad = await store.SubscribeAsync("host-a", new ThrowingObserver());
        await using IAsyncDisposable good = await store.SubscribeAsync("host-a", healthy);
        RunLease lease = (await store.AcquireAsync(new RunLeaseRequest("obs", "host-a", TimeSpan.FromSeconds(10)))).Lease!;

        await store.RequestAbortAsync("obs", lease.FencingToken, "stop");

        await healthy.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested);
        await WaitForLogAsync(308);
    }

    [Fact]
    public async Task Metrics_MeterListenerThrows_AcquireRenewReleaseAndNotificationsStillWorkAndTheFailuresAreLogged()
    {
        // A listener's callback runs on the recording thread: its exception must not turn a lease taken into a failed
        // acquire, nor stop a notification from reaching its observer.
        RedisRunLeaseStore store = await CreateStoreAsync();
        using MeterListener listener = ThrowingMeterListener.Start(store.Metrics.Duration.Meter);
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await store.SubscribeAsync("host-a", observer);

        RunLease lease = (await store.AcquireAsync(new RunLeaseRequest("meter", "host-a", TimeSpan.FromSeconds(10)))).Lease!;
        (await store.RenewAsync([lease], TimeSpan.FromSeconds(10))).Single().Status.Should().Be(RunLeaseRenewStatus.Renewed);
        await store.RequestAbortAsync("meter", lease.FencingToken, "stop");
        await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested);
        await store.ReleaseAsync(lease);

        (await store.GetOwnerAsync("meter")).Should().BeNull("the release went through");
        await WaitForLogAsync(310);
    }

    private async Task<RedisRunLeaseStore> CreateStoreAsync()
    {
        ILoggerFactory factory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Debug));
        var store = new RedisRunLeaseStore(await _harness.ConnectAsync(), _harness.Options, factory);
        return store;
    }

    private async Task WaitForLogAsync(int eventId)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (!_logs.GetSnapshot().Any(r => r.Id.Id == eventId))
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"event {eventId} should be logged");
            await Task.Delay(20);
        }
    }

    private sealed class ThrowingObserver : IRunLeaseObserver
    {
        public void OnNotification(RunLeaseNotification notification) => throw new InvalidOperationException("observer bug");
    }
}
