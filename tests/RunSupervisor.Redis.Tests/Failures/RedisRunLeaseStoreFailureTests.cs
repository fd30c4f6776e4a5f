using System.Diagnostics;
using System.Diagnostics.Metrics;
using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.Failures;

/// <summary>
/// The store when its server dies and comes back: calls fail within the per-call timeout with the exception the
/// registry maps, the store recovers by itself, observers are told to reconcile, and an acquire whose caller gave up
/// never leaves a lease behind. Every test restarts the shared server, so the class runs in the server's collection.
/// </summary>
public abstract class RedisRunLeaseStoreFailureTests(IRedisTestServer server) : IAsyncLifetime
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(30);

    private readonly RedisHarness _harness = new(server, CallTimeout);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Leave the shared server running for the next test, whatever this one did to it.
        await server.StopAsync();
        await server.StartAsync();
        await _harness.DisposeAsync();
    }

    [StoreFact]
    public async Task Calls_ServerStoppedMidLease_FailWithinThePerCallTimeout()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        string session = "failure-" + Guid.NewGuid().ToString("N");
        RunLease lease = (await store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl))).Lease!;
        store.IsConnected.Should().BeTrue();

        await server.StopAsync();

        await ShouldFailInTimeAsync(session, () => store.RenewAsync([lease], Ttl).AsTask());
        await ShouldFailInTimeAsync(session, () => store.ReleaseAsync(lease).AsTask());
        await ShouldFailInTimeAsync(session, () => store.GetOwnerAsync(session).AsTask());
        await ShouldFailInTimeAsync(session, () => store.RequestAbortAsync(session, null, "x").AsTask());
        await ShouldFailInTimeAsync("other-" + session, () => store.AcquireAsync(new RunLeaseRequest("other-" + session, "host-a", Ttl)).AsTask());
        await WaitForAsync(() => !store.IsConnected, "the store should report the connection down");
    }

    [StoreFact]
    public async Task Store_ServerRestartedWithoutData_WorksAgainAndObserversGetReconnected()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        RedisRunLeaseStore other = await _harness.CreateRedisStoreAsync();
        var observer = new RecordingObserver();
        await using IAsyncDisposable subscription = await store.SubscribeAsync("host-a", observer);
        string session = "restart-" + Guid.NewGuid().ToString("N");
        RunLease before = (await store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl))).Lease!;

        await server.StopAsync();
        await server.StartAsync();

        await observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.Reconnected, TimeSpan.FromSeconds(10));
        await WaitForAsync(() => store.IsConnected && other.IsConnected, "both stores should reconnect");
        IReadOnlyList<RunLeaseRenewResult> renew = await RetryAsync(() => store.RenewAsync([before], Ttl).AsTask());
        renew[0].Status.Should().Be(RunLeaseRenewStatus.Missing, "the restarted server lost the lease");
        RunLease after = (await RetryAsync(() => store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl)).AsTask())).Lease!;
        after.FencingToken.Should().BeGreaterThan(before.FencingToken);

        // The channel subscriptions come back with the connection, possibly a moment after Reconnected: pub/sub keeps
        // nothing for a subscriber that is not there yet, so ask again until one message gets through.
        Task<RunLeaseNotification> aborted = observer.WaitForAsync(n => n.Kind == RunLeaseNotificationKind.AbortRequested, TimeSpan.FromSeconds(10));
        for (int attempt = 0; attempt < 30 && !aborted.IsCompleted; attempt++)
        {
            await RetryAsync(() => other.RequestAbortAsync(session, after.FencingToken, "after restart").AsTask());
            await Task.WhenAny(aborted, Task.Delay(300));
        }

        (await aborted).Reason.Should().Be("after restart");
    }

    [StoreFact]
    public async Task AcquireAsync_AnswerLostWhileServerDown_LeavesNoLeaseOnceTheQueuedCallsRun()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        string session = "compensate-" + Guid.NewGuid().ToString("N");

        await server.StopAsync();
        Func<Task> acquire = () => store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl)).AsTask();
        await acquire.Should().ThrowAsync<RunLeaseUnavailableException>();
        await server.StartAsync();

        // Whatever the connection replays of the acquire runs before the release that follows it.
        await WaitForAsync(() => store.IsConnected, "the store should reconnect");
        // A replayed script that found the server's script cache empty is re-sent after the commands queued behind it,
        // so the session may look free for a moment before that acquire and its compensating release run: what must
        // hold is that another host gets the session once they have.
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        RunLeaseAcquireResult again;
        while (!(again = await RetryAsync(() => store.AcquireAsync(new RunLeaseRequest(session, "host-b", Ttl)).AsTask())).IsAcquired)
        {
            again.Owner!.HostId.Should().Be("host-a", "only the given-up acquire may hold the session meanwhile");
            DateTime.UtcNow.Should().BeBefore(deadline, "the acquire nobody waited for must be undone");
            await Task.Delay(50);
        }

        again.Lease!.HostId.Should().Be("host-b");
    }

    [StoreFact]
    public async Task AcquireAsync_CallerCancelsAfterSending_CompensatingReleaseFreesTheSession()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        string session = "cancel-" + Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();

        ValueTask<RunLeaseAcquireResult> pending = store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl), cts.Token);
        cts.Cancel();
        try
        {
            await pending;
        }
        catch (OperationCanceledException)
        {
            // Expected almost always: the answer cannot beat a cancel on the same thread.
        }

        await WaitUntilFreeAsync(store, session);
    }

    [StoreFact]
    public async Task AcquireAsync_AnswerArrivesAfterTheCallerGaveUp_TheLeaseIsStillReleased()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        IDatabase admin = (await _harness.ConnectAsync()).GetDatabase();
        string session = "late-" + Guid.NewGuid().ToString("N");
        RedisKey leaseKey = new LeaseKeys(_harness.Prefix, _harness.Prefix).Lease(session);

        // The store counts the failed call after it gave up on it and before it decides whether to compensate: holding
        // that moment until the server has taken the lease and answered puts the answer in between, deterministically.
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument, store.Metrics.Failures))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) =>
        {
            SpinWait.SpinUntil(() => admin.KeyExists(leaseKey), TimeSpan.FromSeconds(5)).Should().BeTrue("the acquire reaches the server");
            Thread.Sleep(300); // the store's connection reads the answer meanwhile
        });
        listener.Start();
        using var giveUp = new CancellationTokenSource();
        ValueTask<RunLeaseAcquireResult> acquire = store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl), giveUp.Token);
        await giveUp.CancelAsync();

        await FluentActions.Awaiting(async () => await acquire).Should().ThrowAsync<OperationCanceledException>();

        // The caller was told the acquire failed: nobody else would release the lease before its time to live.
        await WaitUntilFreeAsync(store, session);
    }

    [StoreFact]
    public async Task AcquireAsync_TokenCancelledBeforeTheCall_SendsNothing()
    {
        RedisRunLeaseStore store = await _harness.CreateRedisStoreAsync();
        string session = "precancelled-" + Guid.NewGuid().ToString("N");

        Func<Task> acquire = () => store.AcquireAsync(new RunLeaseRequest(session, "host-a", Ttl), new CancellationToken(canceled: true)).AsTask();

        await acquire.Should().ThrowAsync<OperationCanceledException>();
        (await store.GetOwnerAsync(session)).Should().BeNull();
    }

    private static async Task ShouldFailInTimeAsync(string sessionId, Func<Task> call)
    {
        var watch = Stopwatch.StartNew();
        await call.Should().ThrowAsync<RunLeaseUnavailableException>().Where(e => e.SessionId == sessionId && e.InnerException != null);
        // Generous: on a loaded 2-core machine the failure can surface well after the timeout fired.
        watch.Elapsed.Should().BeLessThan(CallTimeout + TimeSpan.FromSeconds(4));
    }

    private static async Task WaitUntilFreeAsync(RedisRunLeaseStore store, string session)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        while (await RetryAsync(() => store.GetOwnerAsync(session).AsTask()) is { } owner)
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"the acquire nobody waited for must be undone, but {owner} is left");
            await Task.Delay(50);
        }
    }

    private static async Task WaitForAsync(Func<bool> condition, string because)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, because);
            await Task.Delay(25);
        }
    }

    private static async Task<T> RetryAsync<T>(Func<Task<T>> call)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (RunLeaseUnavailableException) when (attempt < 40)
            {
                await Task.Delay(100);
            }
        }
    }
}
