using System.Diagnostics;
using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>
/// What two registries that share one lease store see of each other, on the real clock, against the core's in-memory
/// reference, Garnet and redis-server: a busy session names its owner, aborts and supersedes reach the owning host, a
/// heartbeat for a session another host runs is owed once that run ends, and a store outage fails closed or open as
/// configured. Each test has hosts "a" and "b", each with its own store client.
/// </summary>
[Trait("Category", "RealTime")]
public abstract class RegistryAcrossHostsContractTests : RunLeaseStoreContractTestBase
{
    /// <summary>Bounds every wait for another host or the store: generous for a loaded 2-core machine, far below a hang.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    /// <summary>What a timing assertion allows on top of the lease arithmetic: thread-pool delays, reconnects, a server restart.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(4);

    /// <summary>Gets how much earlier than a test's own record of a store call the registry may have stamped it.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMilliseconds(100);

    [StoreFact]
    public async Task StartAsync_SessionRunsOnAnotherHost_ThrowsSessionBusyNamingOwnerThenStartsWithLargerTokenOnceReleased_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        string session = NewSession();
        RunHandle first = await a.Registry.StartAsync(session);

        SessionBusyException busy = (await FluentActions.Awaiting(() => b.Registry.StartAsync(session).AsTask().WaitAsync(Bound))
            .Should().ThrowAsync<SessionBusyException>()).Which;

        busy.SessionId.Should().Be(session);
        busy.OwnerHostId.Should().Be(a.HostId);
        busy.FencingToken.Should().Be(first.FencingToken);
        b.Registry.IsActive(session).Should().BeFalse("a start the store refused never stays in this host's table");
        first.IsCurrent.Should().BeTrue("a refused start on another host changes nothing here");

        await first.DisposeAsync();

        // The release reaches the store in the background: the session is free for host b once the store says so.
        await WaitUntilIdleAsync(b.Registry, session);
        await using RunHandle second = await b.Registry.StartAsync(session);
        second.FencingToken.Should().BeGreaterThan(first.FencingToken);
        second.FencingToken.Should().NotBe(second.RunId, "the store was up: the run is fenced");
    }

    [StoreFact]
    public async Task StartAsync_WaitWhileAnotherHostRunsTheSession_AdmittedWithLargerTokenOnceReleased_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        string session = NewSession();
        RunHandle first = await a.Registry.StartAsync(session);

        Task<RunHandle> waiting = b.Registry.StartAsync(session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(10) }).AsTask();

        // Polls come and go while host a still renews its lease: the waiting start must not slip in.
        await Task.Delay(RegistryHost.RemoteIdlePollInterval * 3);
        waiting.IsCompleted.Should().BeFalse("host a still runs the session");
        await first.DisposeAsync();

        // Woken by the release message, or at worst by the next poll.
        await using RunHandle second = await waiting.WaitAsync(Bound);
        second.FencingToken.Should().BeGreaterThan(first.FencingToken);
        RunLeaseInfo? owner = await b.Registry.GetSessionOwnerAsync(session);
        owner!.HostId.Should().Be(b.HostId);
        owner.FencingToken.Should().Be(second.FencingToken);
    }

    [StoreFact]
    public async Task TryAbortAsync_FromAnotherHost_WrongTokenAbortsNothingAndRightTokenAbortsTheRunWithTheReason_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        string session = NewSession();
        RunHandle run = await a.Registry.StartAsync(session);

        (await b.Registry.TryAbortAsync(session, run.FencingToken + 1, "meant for another run")).Should().BeFalse();

        // Renewals pass: neither a message nor the flag a renew reads may carry an abort the store refused.
        await Task.Delay(RegistryHost.RenewInterval * 2);
        run.AbortToken.IsCancellationRequested.Should().BeFalse("the expected token named no run of this session");
        var timer = Stopwatch.StartNew();

        (await b.Registry.TryAbortAsync(session, run.FencingToken, "operator: stop {now} from host b")).Should().BeTrue();

        // The message usually comes first; the next renew carries the flag and its reason anyway.
        await WaitUntilCancelledAsync(run.AbortToken, "host a should learn of the abort");
        timer.Elapsed.Should().BeLessThan(RegistryHost.RenewInterval + Slack);
        run.Status.Should().Be(RunStatus.Aborting, "an aborted run has its grace period to settle");
        await run.DisposeAsync();
        RunEndedEventArgs end = await a.EndOfAsync(run, Bound);
        end.Reason.Should().Be(RunEndReason.Aborted);
        end.Detail.Should().Be("operator: stop {now} from host b");
        end.FencingToken.Should().Be(run.FencingToken);
    }

    [StoreFact]
    public async Task StartAsync_SupersedeFromAnotherHost_OldRunEndsSupersededNamingTheNewHostAndNewTokenIsLarger_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        string session = NewSession();
        RunHandle old = await a.Registry.StartAsync(session);

        // A supersede reaches the old owner as a message. Host a subscribes in the background of its first start; were it
        // not listening yet, only its next renew would see the takeover, and end the run LeaseLost instead.
        await Harness.WaitUntilSubscribedAsync(a.HostId, Bound);

        await using RunHandle newer = await b.Registry.StartAsync(session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        newer.FencingToken.Should().BeGreaterThan(old.FencingToken);
        RunEndedEventArgs end = await a.EndOfAsync(old, Bound);
        end.Reason.Should().Be(RunEndReason.Superseded);
        end.Detail.Should().Be($"superseded by host '{b.HostId}' (fencing token {newer.FencingToken})");
        old.AbortToken.IsCancellationRequested.Should().BeTrue("the superseded run's provider is told to stop");
        a.Registry.IsActive(session).Should().BeFalse();
        a.LogsWithEvent("RemoteSupersede").Should().ContainSingle();

        // The old run forfeited its lease: a release from it would be a stale write, so the session stays host b's.
        await old.DisposeAsync();
        RunLeaseInfo? owner = await b.Registry.GetSessionOwnerAsync(session);
        owner!.HostId.Should().Be(b.HostId);
        owner.FencingToken.Should().Be(newer.FencingToken);
        newer.IsCurrent.Should().BeTrue();
    }

    [StoreFact]
    public async Task ResolveAsync_HeartbeatWhileAnotherHostRunsTheSession_DropsItAndOwesItOnceThatRunEnds_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        using var policy = new HeartbeatQueuePolicy(b.Registry);
        var owed = new TaskCompletionSource<HeartbeatOwedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        int owedCount = 0;
        policy.HeartbeatOwed += (_, e) =>
        {
            Interlocked.Increment(ref owedCount);
            owed.TrySetResult(e);
        };
        string session = NewSession();
        var heartbeat = new QueueRequest(session, IsHeartbeat: true);
        RunHandle remote = await a.Registry.StartAsync(session);

        QueueDecision first = await policy.ResolveAsync(heartbeat);
        QueueDecision second = await policy.ResolveAsync(heartbeat);

        first.Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileRemote));
        second.Should().Be(first);
        policy.GetDroppedHeartbeats(session).Should().Be(2);

        // Host b now watches the session: its polls must not call it idle while host a renews its lease.
        await Task.Delay(RegistryHost.RemoteIdlePollInterval * 3);
        owed.Task.IsCompleted.Should().BeFalse("host a still runs the session");

        await remote.DisposeAsync();

        // The release message, or at worst the next poll, tells host b the session is idle cluster-wide.
        HeartbeatOwedEventArgs paid = await owed.Task.WaitAsync(Bound);
        paid.SessionId.Should().Be(session);
        paid.DroppedHeartbeats.Should().Be(2);
        policy.GetDroppedHeartbeats(session).Should().Be(0);

        // Both the message and a poll may find the session idle: the heartbeat is still owed only once.
        await Task.Delay(RegistryHost.RemoteIdlePollInterval * 2);
        Volatile.Read(ref owedCount).Should().Be(1);
        (await policy.ResolveAsync(heartbeat)).Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
    }

    [StoreFact]
    public async Task StoreDown_FailClosed_StartFailsInTimeRunningRunEndsLeaseLostAndFencedStartsResumeOnceBack_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a");
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b");
        string session = NewSession();
        string other = NewSession();
        RunHandle running = await a.Registry.StartAsync(session);
        var down = Stopwatch.StartNew();

        await Harness.TakeDownAsync();

        var timer = Stopwatch.StartNew();
        RunLeaseUnavailableException unavailable = (await FluentActions.Awaiting(() => b.Registry.StartAsync(other).AsTask().WaitAsync(Bound))
            .Should().ThrowAsync<RunLeaseUnavailableException>()).Which;
        timer.Elapsed.Should().BeLessThan(RegistryHost.AcquireTimeout + Slack, "the acquire timeout bounds the store call");
        unavailable.SessionId.Should().Be(other);
        b.Registry.IsActive(other).Should().BeFalse("a start the store could not confirm never runs, failing closed");

        // Every renew fails now: the run ends once TTL − margin has passed since the last confirmed one was sent.
        RunEndedEventArgs lost = await a.EndOfAsync(running, Bound);
        lost.Reason.Should().Be(RunEndReason.LeaseLost);
        lost.Detail.Should().Contain("no renew was confirmed");
        a.EndedAfterLastConfirmedSend(running).Should().BeGreaterThan(RegistryHost.Validity - ClockSkew, "a renew that fails costs nothing until the run's local validity ends");
        down.Elapsed.Should().BeLessThan(RegistryHost.Validity + Slack, "the last confirmed renew was sent before the store went down");
        running.AbortToken.IsCancellationRequested.Should().BeTrue("a run that lost its lease is told to stop at once");
        RunLeaseHealth health = a.Registry.GetLeaseHealth();
        health.IsStoreAvailable.Should().BeFalse();
        health.LeasesLost.Should().Be(1);
        a.LogsWithEvent("LeaseLost").Should().ContainSingle();

        await Harness.BringBackAsync();

        await using RunHandle resumed = await StartOnceTheStoreAnswersAsync(b.Registry, session);
        resumed.FencingToken.Should().BeGreaterThan(running.FencingToken, "tokens keep growing, even from a restarted store that forgot its counters");
        RunLeaseInfo? owner = await b.Registry.GetSessionOwnerAsync(session);
        owner!.HostId.Should().Be(b.HostId);
        owner.FencingToken.Should().Be(resumed.FencingToken);
        await running.DisposeAsync();
    }

    [StoreFact]
    public async Task StoreDown_FailOpen_StartRunsUnfencedAndCountedRunningRunKeepsGoingAndFencedStartsResumeOnceBack_RealTime()
    {
        await using RegistryHost a = await RegistryHost.CreateAsync(Harness, "host-a", StoreUnavailableBehavior.FailOpen);
        await using RegistryHost b = await RegistryHost.CreateAsync(Harness, "host-b", StoreUnavailableBehavior.FailOpen);
        string session = NewSession();
        string other = NewSession();
        RunHandle running = await a.Registry.StartAsync(session);
        running.FencingToken.Should().NotBe(running.RunId, "the store was up: the run is fenced");
        var down = Stopwatch.StartNew();

        await Harness.TakeDownAsync();

        var timer = Stopwatch.StartNew();
        await using RunHandle unfenced = await b.Registry.StartAsync(other).AsTask().WaitAsync(Bound);
        timer.Elapsed.Should().BeLessThan(RegistryHost.AcquireTimeout + Slack, "the acquire timeout bounds the store call");
        unfenced.FencingToken.Should().Be(unfenced.RunId, "a run started without a lease has its own id as its token");
        unfenced.IsCurrent.Should().BeTrue();
        b.Registry.GetLeaseHealth().UnfencedStarts.Should().Be(1);
        b.LogsWithEvent("UnfencedStart").Should().ContainSingle().Which.Id.Id.Should().Be(27);

        // Failing closed, the run would end once its validity ran out; failing open it keeps going.
        TimeSpan pastValidity = RegistryHost.Validity + RegistryHost.RenewInterval - down.Elapsed;
        if (pastValidity > TimeSpan.Zero)
        {
            await Task.Delay(pastValidity);
        }

        running.IsCurrent.Should().BeTrue("failing open trades exclusivity for availability");
        running.AbortToken.IsCancellationRequested.Should().BeFalse();
        a.Registry.GetLeaseHealth().IsStoreAvailable.Should().BeFalse("its renewals fail");
        a.Registry.GetLeaseHealth().LeasesLost.Should().Be(0);

        await Harness.BringBackAsync();

        await using RunHandle fenced = await StartOnceTheStoreAnswersAsync(b.Registry, NewSession());
        fenced.FencingToken.Should().NotBe(fenced.RunId);
        RunLeaseInfo? owner = await b.Registry.GetSessionOwnerAsync(fenced.SessionId);
        owner!.HostId.Should().Be(b.HostId);
        owner.FencingToken.Should().Be(fenced.FencingToken);
        await running.DisposeAsync();
    }

    /// <summary>Polls the store, through <paramref name="registry"/>, until nobody holds the session.</summary>
    private static async Task WaitUntilIdleAsync(ActiveRunRegistry registry, string sessionId)
    {
        DateTime deadline = DateTime.UtcNow + Bound;
        while (await registry.GetSessionOwnerAsync(sessionId) is not null)
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"'{sessionId}' should be idle once its run was released");
            await Task.Delay(25);
        }
    }

    private static async Task WaitUntilCancelledAsync(CancellationToken token, string because)
    {
        try
        {
            await Task.Delay(Bound, token);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return;
        }

        throw new TimeoutException($"The abort token was not cancelled within {Bound}: {because}.");
    }

    /// <summary>
    /// Starts a fenced run once the store answers again. A real server's clients reconnect on their own schedule, and the
    /// in-memory store still holds a lease its host stopped trusting a safety margin before the store lets it lapse: until
    /// then a start fails (closed), is refused as busy, or runs unfenced (open). Each of those is retried, within the bound.
    /// </summary>
    private static async Task<RunHandle> StartOnceTheStoreAnswersAsync(ActiveRunRegistry registry, string sessionId)
    {
        DateTime deadline = DateTime.UtcNow + Bound;
        while (true)
        {
            try
            {
                RunHandle run = await registry.StartAsync(sessionId);
                if (run.FencingToken != run.RunId)
                {
                    return run;
                }

                await run.DisposeAsync();
            }
            catch (Exception e) when (e is RunLeaseUnavailableException or SessionBusyException)
            {
                // Not yet: tried again below, until the deadline.
            }

            DateTime.UtcNow.Should().BeBefore(deadline, $"a fenced start of '{sessionId}' should work once the store is back");
            await Task.Delay(100);
        }
    }
}
