using FluentAssertions;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Leasing;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>
/// A registry's subscription to its store's notifications (made in the background, never failing a start, ended with the
/// registry), the observer the store calls, and the timeout each store call carries.
/// </summary>
public sealed class RemoteSubscriptionTests
{
    private const string Session = "s1";
    private const string OperationTag = "runsupervisor.lease_operation";

    private static readonly QueueRequest Heartbeat = new(Session, IsHeartbeat: true, QueueMode.Collect);

    [Fact]
    public async Task StartAsync_SubscribeFails_StartsAndLogsThatNotificationsArriveByRenewAndPoll()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store) { SubscribeFailure = new InvalidOperationException("no pub/sub") };
        LeaseCluster.Host b = cluster.AddHost("b", store: store);

        using RunHandle run = await b.Registry.StartAsync(Session);

        run.IsCurrent.Should().BeTrue("a start never fails for want of the subscription");
        FakeLogRecord record = b.LogsWithEvent("LeaseStoreUnavailable").Should().ContainSingle().Subject;
        record.Level.Should().Be(LogLevel.Warning);
        record.Message.Should().Be("The run lease store did not answer for session '' (subscribe); aborts and releases from other hosts arrive by renew and poll until it succeeds.");
        record.Exception.Should().BeSameAs(store.SubscribeFailure);
    }

    [Fact]
    public async Task ResolveAsync_SessionAlreadyWatchedAfterAFailedSubscribe_RetriesTheSubscriptionOnlyForANewlyWatchedSession()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store) { SubscribeFailure = new InvalidOperationException("no pub/sub") };
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);
        await LeaseCluster.HoldElsewhereAsync(cluster.Store, "s2");

        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        store.SubscribeFailure = null;
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);
        int afterSecondDrop = store.SubscribeCalls;
        (await policy.ResolveAsync(Heartbeat with { SessionId = "s2" })).Action.Should().Be(QueueAction.Drop);

        afterSecondDrop.Should().Be(1, "a session already watched is not watched anew");
        store.SubscribeCalls.Should().Be(2, "a newly watched session tries the failed subscription again");
    }

    [Fact]
    public async Task ResolveAsync_StoreDown_CountsTheFailedLookupAsGetOwner()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        using var failures = new MetricCollector<long>(b.Registry.Metrics.LeaseStoreFailures);
        cluster.Store.BeginOutage();

        (await policy.ResolveAsync(Heartbeat)).Reason.Should().Be(QueueDecisionReasons.HeartbeatWhileStoreUnavailable);

        failures.GetMeasurementSnapshot().Select(m => m.Tags[OperationTag]).Should().Equal("get_owner", "subscribe");
    }

    [Fact]
    public async Task Dispose_WhileTheSubscribeCallIsPending_UnsubscribesOnceItAnswers()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store) { SubscribeGate = new TaskCompletionSource() };
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        RunHandle run = await b.Registry.StartAsync(Session);

        b.Registry.Dispose();
        store.Unsubscribed.IsCompleted.Should().BeFalse("the store has not answered the subscribe call yet");
        store.SubscribeGate.SetResult();

        await store.Unsubscribed.Guard();
        (await run.Completion.Guard()).Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task Dispose_Subscribed_EndsTheSubscription()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using (await b.Registry.StartAsync(Session))
        {
        }

        store.Unsubscribed.IsCompleted.Should().BeFalse();
        b.Registry.Dispose();

        await store.Unsubscribed.Guard();
        b.LogsWithEvent("LeaseStoreUnavailable").Should().BeEmpty();
    }

    [Fact]
    public async Task Dispose_UnsubscribeFails_LogsThatTheSubscriptionEndsWithTheConnection()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store) { UnsubscribeFailure = new InvalidOperationException("connection gone") };
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using (await b.Registry.StartAsync(Session))
        {
        }

        FluentActions.Invoking(b.Registry.Dispose).Should().NotThrow();

        await store.Unsubscribed.Guard();
        FakeLogRecord record = b.LogsWithEvent("LeaseStoreUnavailable").Should().ContainSingle().Subject;
        record.Level.Should().Be(LogLevel.Warning);
        record.Message.Should().Be("The run lease store did not answer for session '' (unsubscribe); the subscription ends with the connection.");
        record.Exception.Should().BeSameAs(store.UnsubscribeFailure);
    }

    [Fact]
    public async Task OnNotification_Null_ThrowsArgumentNullException()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using RunHandle run = await b.Registry.StartAsync(Session);

        FluentActions.Invoking(() => store.Observer!.OnNotification(null!)).Should().Throw<ArgumentNullException>().WithParameterName("notification");
        run.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task OnNotification_ReleaseArrivesAfterDispose_OwesNothing()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        LeaseCluster.Host b = cluster.AddHost("b", store: store);
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        int owed = 0;
        policy.HeartbeatOwed += (_, _) => owed++;
        RunLease remote = await LeaseCluster.HoldElsewhereAsync(cluster.Store, Session);
        (await policy.ResolveAsync(Heartbeat)).Action.Should().Be(QueueAction.Drop);

        b.Registry.Dispose();
        FluentActions.Invoking(() => store.Observer!.OnNotification(new RunLeaseNotification(RunLeaseNotificationKind.Released, Session, remote.FencingToken)))
            .Should().NotThrow();

        owed.Should().Be(0, "a disposed registry has no session left to run the heartbeat on");
    }

    [Fact]
    public async Task OnNotification_HandlingFails_LogsTheDroppedNotificationInsteadOfThrowingIntoTheStore()
    {
        using var cluster = new LeaseCluster();
        var store = new ObservingLeaseStore(cluster.Store);
        var logs = new FakeLoggerProvider();
        var failure = new InvalidOperationException("log sink down");
        using var loggerFactory = new LoggerFactory([new FailingLoggerProvider(logs, "RunAborted", failure)]);
        using var registry = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), cluster.Time, loggerFactory, store);
        using RunHandle run = await registry.StartAsync(Session);

        FluentActions.Invoking(() => store.Observer!.OnNotification(new RunLeaseNotification(RunLeaseNotificationKind.AbortRequested, Session, run.FencingToken, "stop")))
            .Should().NotThrow();

        FakeLogRecord record = logs.Collector.GetSnapshot().Where(r => r.Id.Name == "LeaseStoreUnavailable").Should().ContainSingle().Subject;
        record.Message.Should().Be("The run lease store did not answer for session 's1' (notification); the notification was dropped.");
        record.Exception.Should().BeOfType<AggregateException>().Which.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task GetSessionOwnerAsync_CallerCancelsWhileTheStoreHangs_ThrowsOperationCanceledAtOnce()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host b = cluster.AddHost("b");
        using var cts = new CancellationTokenSource();
        cluster.Store.BeginOutage(hang: true);

        Task<RunLeaseInfo?> owner = b.Registry.GetSessionOwnerAsync(Session, cts.Token).AsTask();
        owner.IsCompleted.Should().BeFalse();
        await cts.CancelAsync();

        await FluentActions.Awaiting(() => owner.Guard()).Should().ThrowAsync<OperationCanceledException>("the store call's own timeout has not passed: only the caller's token can have ended it");
        b.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeTrue("a caller's cancellation is no store failure");
    }

    [Fact]
    public async Task GetSessionOwnerAsync_StoreAnswers_LeavesNoTimerArmed()
    {
        var time = new TimerTrackingTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var store = new InMemoryRunLeaseStore(time);
        using var registry = new ActiveRunRegistry(LeaseCluster.HostOptions("b"), time, leaseStore: store);
        await LeaseCluster.HoldElsewhereAsync(store, Session);

        RunLeaseInfo? owner = await registry.GetSessionOwnerAsync(Session);

        owner!.HostId.Should().Be("a");
        time.ArmedTimers.Should().Be(0, "the call's timeout is disposed with the call");
    }

    /// <summary>Loggers that throw for one event (a broken sink) and record every other one.</summary>
    private sealed class FailingLoggerProvider(FakeLoggerProvider inner, string failingEvent, Exception failure) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new FailingLogger(inner.CreateLogger(categoryName), failingEvent, failure);

        public void Dispose() => inner.Dispose();

        private sealed class FailingLogger(ILogger inner, string failingEvent, Exception failure) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => inner.BeginScope(state);

            public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (eventId.Name == failingEvent)
                {
                    throw failure;
                }

                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
