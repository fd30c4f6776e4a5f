using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary><see cref="SessionBusyBehavior.Wait"/>: a start on a busy session waits, first in first out, and is admitted by the transition that frees the session.</summary>
public sealed class WaitQueueTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait };

    [Fact]
    public async Task StartAsync_WaitOnBusySession_QueuesThenIsAdmittedWhenTheRunIsReleased()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start(Session);

        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);

        waiting.IsCompleted.Should().BeFalse();
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        f.Time.Advance(TimeSpan.FromSeconds(5));
        first.Dispose();

        waiting.IsCompletedSuccessfully.Should().BeTrue("the release admits the waiter in the same step");
        RunHandle second = await waiting;
        second.RunId.Should().BeGreaterThan(first.RunId);
        second.IsCurrent.Should().BeTrue();
        second.StartedAt.Should().Be(f.Time.GetUtcNow(), "the admitted run's own clock starts at admission");
        second.Deadline.Should().Be(f.Time.GetUtcNow() + RegistryFixture.Timeout);
        f.Registry.GetQueuedCount(Session).Should().Be(0);
        f.LogsWithEvent("RunAdmitted").Should().ContainSingle().Which.Message.Should().Contain("after waiting 00:00:05");
        second.Dispose();
    }

    [Fact]
    public async Task StartAsync_SessionFreedBetweenTheLookAndTheLock_EntersAtOnce()
    {
        // A start that saw its session busy makes no run up front; if the session is freed before it takes the lock,
        // it makes its run there and enters instead of queueing behind nobody.
        var time = new HookedTimeProvider();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), time);
        RunHandle first = registry.Start(Session);
        time.OnNextTimestamp = first.Dispose;

        ValueTask<RunHandle> start = registry.StartAsync(Session, Wait);

        start.IsCompletedSuccessfully.Should().BeTrue();
        RunHandle second = await start;
        second.IsCurrent.Should().BeTrue();
        second.RunId.Should().BeGreaterThan(first.RunId);
        first.Status.Should().Be(RunStatus.Ended);
        registry.GetQueuedCount(Session).Should().Be(0);
        second.Dispose();
    }

    [Fact]
    public async Task StartAsync_SeveralWaiters_AdmittedOneAtATimeInArrivalOrder()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle>[] waiters = [.. Enumerable.Range(0, 3).Select(_ => f.Registry.StartAsync(Session, Wait))];

        for (int i = 0; i < waiters.Length; i++)
        {
            f.Registry.GetQueuedCount(Session).Should().Be(waiters.Length - i);
            current.Dispose();
            waiters[i].IsCompletedSuccessfully.Should().BeTrue("waiter {0} is next", i);
            waiters.Skip(i + 1).All(w => !w.IsCompleted).Should().BeTrue("one release admits one waiter");
            current = await waiters[i];
        }

        current.Dispose();
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_WaiterBehindAProviderThatNeverSettles_AdmittedAtDeadlinePlusGraceNeverLater()
    {
        using var f = new RegistryFixture();
        RunHandle zombie = f.Registry.Start(Session);
        zombie.Attach(new TaskCompletionSource().Task);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromHours(1) });

        f.Time.Advance(RegistryFixture.Timeout);
        waiting.IsCompleted.Should().BeFalse("the zombie is only aborting");
        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromTicks(1));
        waiting.IsCompleted.Should().BeFalse();
        f.Time.Advance(TimeSpan.FromTicks(1));

        waiting.IsCompletedSuccessfully.Should().BeTrue("the eviction frees the session and admits the waiter in the same step");
        zombie.Status.Should().Be(RunStatus.Evicted);
        using RunHandle next = await waiting;
        next.StartedAt.Should().Be(f.Time.GetUtcNow());
        f.Registry.AbandonedCount.Should().Be(1);
    }

    [Theory]
    [InlineData(RunEndReason.TimedOut)]
    [InlineData(RunEndReason.Aborted)]
    [InlineData(RunEndReason.Faulted)]
    public async Task StartAsync_CurrentRunEndsAnyWay_AdmitsTheWaiter(RunEndReason how)
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, QueueTimeout = TimeSpan.FromHours(1) });
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);

        f.EndRun(current, how);

        (await current.Completion).Should().Be(how);
        waiting.IsCompletedSuccessfully.Should().BeTrue();
        (await waiting).Dispose();
    }

    [Fact]
    public async Task StartAsync_SessionSupersededWhileAStartWaits_WaiterStaysQueuedBehindTheNewRun()
    {
        using var f = new RegistryFixture();
        f.Registry.Start(Session);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);

        RunHandle replacement = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        waiting.IsCompleted.Should().BeFalse("a supersede replaces the run in place: the session never became free");
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        replacement.Dispose();
        (await waiting).Dispose();
    }

    [Fact]
    public async Task StartAsync_QueueTimeoutPasses_FailsWithRunQueueTimeoutExceptionAndTheNextWaiterIsUnaffected()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> impatient = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(10) });
        ValueTask<RunHandle> patient = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) });

        f.Time.Advance(TimeSpan.FromSeconds(10));

        RunQueueTimeoutException error = (await FluentActions.Awaiting(async () => await impatient).Should().ThrowAsync<RunQueueTimeoutException>()).Which;
        error.SessionId.Should().Be(Session);
        error.Lane.Should().BeNull();
        error.Waited.Should().Be(TimeSpan.FromSeconds(10));
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        f.LogsWithEvent("QueueTimedOut").Should().ContainSingle();
        current.Dispose();
        (await patient).Dispose();
    }

    [Fact]
    public async Task StartAsync_ZeroQueueTimeout_FailsAtOnceWithoutWaiting()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { QueueTimeout = TimeSpan.Zero });
        using RunHandle current = f.Registry.Start(Session);

        ValueTask<RunHandle> start = f.Registry.StartAsync(Session, Wait);

        start.IsFaulted.Should().BeTrue();
        (await FluentActions.Awaiting(async () => await start).Should().ThrowAsync<RunQueueTimeoutException>()).Which.Waited.Should().Be(TimeSpan.Zero);
        f.Registry.GetQueuedCount(Session).Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_CallerCancelsWhileQueued_FailsWithTheCallersTokenAndNeverRuns()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        ValueTask<RunHandle> cancelled = f.Registry.StartAsync(Session, Wait, cts.Token);
        ValueTask<RunHandle> next = f.Registry.StartAsync(Session, Wait);

        await cts.CancelAsync();

        (await FluentActions.Awaiting(async () => await cancelled).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        current.Dispose();
        RunHandle admitted = await next;
        admitted.RunId.Should().Be(current.RunId + 1, "the cancelled start never took a run id");
        admitted.Dispose();
    }

    [Fact]
    public async Task RunAsync_WaitWhileBusy_InvokesTheProviderOnlyAfterAdmission()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);
        int invoked = 0;

        Task<int> call = f.Registry.RunAsync(Session, _ => { Interlocked.Increment(ref invoked); return Task.FromResult(42); }, Wait);

        await Task.Delay(50);
        Volatile.Read(ref invoked).Should().Be(0);
        current.Dispose();
        (await call.WaitAsync(TimeSpan.FromSeconds(30))).Should().Be(42);
        invoked.Should().Be(1);
    }

    [Fact]
    public async Task RunAsync_CancelledWhileQueued_NeverInvokesTheProvider()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        int invoked = 0;

        Task call = f.Registry.RunAsync(Session, _ => { Interlocked.Increment(ref invoked); return Task.CompletedTask; }, Wait, cts.Token);
        await cts.CancelAsync();

        (await FluentActions.Awaiting(() => call.WaitAsync(TimeSpan.FromSeconds(30))).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        invoked.Should().Be(0);
    }

    [Fact]
    public void Start_WaitOnBusySession_NeverWaitsAndThrowsSessionBusyException()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);

        FluentActions.Invoking(() => f.Registry.Start(Session, Wait)).Should().Throw<SessionBusyException>().Which.RunId.Should().Be(current.RunId);
        f.Registry.TryStart(Session, out _, Wait).Should().BeFalse();
        f.Registry.GetQueuedCount(Session).Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_WaitOnAFreeSessionWithWaitersBehindALane_NeverOvertakesThem()
    {
        var options = new RunSupervisorOptions { MaxActiveRuns = 1 };
        using var f = new RegistryFixture(options);
        RunHandle other = f.Registry.Start("other");
        ValueTask<RunHandle> first = f.Registry.StartAsync(Session, Wait);

        ValueTask<RunHandle> second = f.Registry.StartAsync(Session, Wait);

        f.Registry.GetQueuedCount(Session).Should().Be(2);
        other.Dispose();
        first.IsCompletedSuccessfully.Should().BeTrue();
        second.IsCompleted.Should().BeFalse();
        (await first).Dispose();
        (await second).Dispose();
    }

    [Fact]
    public async Task Dispose_WithWaitingStarts_FailsEachWithObjectDisposedException()
    {
        var f = new RegistryFixture();
        f.Registry.Start(Session);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);

        f.Dispose();

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<ObjectDisposedException>();
    }

    /// <summary>A fake clock that runs an action, once, at its next timestamp read: between a start's lock-free look and its lock.</summary>
    private sealed class HookedTimeProvider : FakeTimeProvider
    {
        public Action? OnNextTimestamp { get; set; }

        public override long GetTimestamp()
        {
            if (OnNextTimestamp is { } hook)
            {
                OnNextTimestamp = null;
                hook();
            }

            return base.GetTimestamp();
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(60, true)]
    public async Task StartAsync_OneLateWatchdogTickPastTheHungRunsEvictionInstant_EndsTheStartAsOnTimeTicksWould(int queueTimeoutMinutes, bool admitted)
    {
        // On time, a one-minute queue timeout fails the start nine and a half minutes before the hung run is evicted; an
        // hour's lets the eviction admit it. One late tick covering both instants (a paused process waking) must agree.
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, QueueTimeout = TimeSpan.FromMinutes(queueTimeoutMinutes) });
        RunHandle hung = f.Registry.Start(Session);
        hung.Attach(new TaskCompletionSource().Task);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace + TimeSpan.FromMinutes(5));

        hung.Status.Should().Be(RunStatus.Evicted);
        if (admitted)
        {
            using RunHandle run = await waiting;
            run.IsCurrent.Should().BeTrue();
        }
        else
        {
            await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<RunQueueTimeoutException>();
            f.Registry.IsActive(Session).Should().BeFalse("the start that gave up never ran");
        }
    }
}
