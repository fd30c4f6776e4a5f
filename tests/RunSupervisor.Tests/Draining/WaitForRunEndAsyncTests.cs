using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Draining;

/// <summary>
/// <see cref="ActiveRunRegistry.WaitForRunEndAsync(string, TimeSpan, CancellationToken)"/>: true once the session
/// has no run, false at the timeout, cancelled with the caller's token, and no polling timer.
/// </summary>
public sealed class WaitForRunEndAsyncTests
{
    private const string Session = "s1";

    [Fact]
    public async Task WaitForRunEndAsync_SessionIdle_ReturnsTrueSynchronously()
    {
        using var f = new RegistryFixture();

        // Infinite timeout: an implementation that waited instead of answering at once would never finish.
        Task<bool> neverUsed = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);
        neverUsed.IsCompletedSuccessfully.Should().BeTrue();
        (await neverUsed).Should().BeTrue();

        // Idle again after a run: same answer.
        f.Registry.Start(Session).Dispose();
        Task<bool> afterRun = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);
        afterRun.IsCompletedSuccessfully.Should().BeTrue();
        (await afterRun).Should().BeTrue();
    }

    [Fact]
    public async Task WaitForRunEndAsync_RunReleased_ReturnsTrue()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromMinutes(5));
        wait.IsCompleted.Should().BeFalse("the run is still active");

        run.Dispose();

        (await wait.Guard()).Should().BeTrue();
    }

    [Fact]
    public async Task WaitForRunEndAsync_RunForceEvicted_ReturnsTrue()
    {
        using var f = new RegistryFixture();
        RunHandle zombie = f.Registry.Start(Session);
        zombie.Attach(new TaskCompletionSource().Task);

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromHours(1));

        // The deadline alone (abort sent, run still registered) does not end the wait.
        f.Time.Advance(RegistryFixture.Timeout);
        f.Registry.IsActive(Session).Should().BeTrue();
        wait.IsCompleted.Should().BeFalse();

        f.Time.Advance(RegistryFixture.Grace);

        (await wait.Guard()).Should().BeTrue("a force eviction ends the run and wakes its waiters");
        f.Registry.IsActive(Session).Should().BeFalse();
    }

    [Fact]
    public async Task WaitForRunEndAsync_TimeoutElapsesWhileRunStays_ReturnsFalseAndLeavesRunAlone()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);
        TimeSpan timeout = TimeSpan.FromMinutes(1);

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, timeout);
        f.Time.Advance(timeout - TestTime.Tick);
        wait.IsCompleted.Should().BeFalse();

        // The wait's timeout runs on the injected TimeProvider: only the fake clock can make it elapse.
        f.Time.Advance(TestTime.Tick);

        (await wait.Guard()).Should().BeFalse();
        run.IsCurrent.Should().BeTrue("a wait that times out does not touch the run");
        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task WaitForRunEndAsync_ZeroTimeoutWithActiveRun_ReturnsFalse()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);

        (await f.Registry.WaitForRunEndAsync(Session, TimeSpan.Zero).Guard()).Should().BeFalse();
        run.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task WaitForRunEndAsync_TokenCancelledDuringWait_ThrowsOperationCanceledAndLeavesRunAlone()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan, cts.Token);
        cts.Cancel();

        (await FluentActions.Awaiting(() => wait.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token);
        run.IsCurrent.Should().BeTrue("the token cancels the wait, not the run");
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task WaitForRunEndAsync_TokenAlreadyCancelled_ReturnsCanceledTask()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan, cts.Token);

        wait.IsCanceled.Should().BeTrue();
        await FluentActions.Awaiting(() => wait).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task WaitForRunEndAsync_RunSupersededWhileWaiting_ReturnsTrueWhileNewRunIsCurrent()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start(Session);
        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);

        using RunHandle second = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        // The wait was for the first run; the session being busy again with another run does not matter.
        (await wait.Guard()).Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeTrue();
        second.IsCurrent.Should().BeTrue();
        first.IsCurrent.Should().BeFalse();
    }

    [Fact]
    public async Task WaitForRunEndAsync_StaleHandleOfEarlierRunDisposed_KeepsWaitingForCurrentRun()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start(Session);
        first.Dispose();
        RunHandle second = f.Registry.Start(Session);

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);

        // A late release of the earlier run's handle is not the end of the run the wait is about.
        first.Dispose();
        f.Registry.IsActive(Session).Should().BeTrue();
        wait.IsCompleted.Should().BeFalse();

        second.Dispose();
        (await wait.Guard()).Should().BeTrue();
    }

    [Fact]
    public async Task WaitForRunEndAsync_ClockAdvancesWhileRunStays_ArmsNoPollingTimerAndCompletesOnReleaseWithoutAdvance()
    {
        // A registry of its own on a clock that records every timer created on it.
        var time = new TimerCountingTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace }, time);
        RunHandle run = registry.Start(Session);
        Task<bool> wait = registry.WaitForRunEndAsync(Session, TimeSpan.FromMinutes(5));
        int timersAfterCall = time.TimersCreated;

        // Four minutes of fake time in one-second steps (inside the wait's timeout and the run's deadline).
        // The run has not ended, so the wait must not complete; and a wait driven by the run-end notification
        // needs no timer beyond its timeout, whereas a polling loop would arm a new (or a periodic) timer to re-check.
        for (int i = 0; i < 240; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            wait.IsCompleted.Should().BeFalse("the run has not ended (after {0} s)", i + 1);
        }

        time.TimersCreated.Should().Be(timersAfterCall, "no timer may be armed to poll while waiting");
        time.PeriodicTimersCreated.Should().Be(0);

        run.Dispose();

        // No Advance from here on: a loop polling on the (fake) clock could never notice the release, so only
        // the run-end notification can complete the wait within the hang guard.
        (await wait.Guard()).Should().BeTrue();
    }

    [Theory]
    [InlineData(-1L)] // one tick below zero
    [InlineData(-20_000L)] // -2 ms: negative, and not Timeout.InfiniteTimeSpan (-1 ms)
    [InlineData(-10_000_000L)] // -1 s
    [InlineData(42_949_672_950_000L)] // uint.MaxValue milliseconds: one more than a timer accepts
    public async Task WaitForRunEndAsync_TimeoutOutOfRange_ThrowsArgumentOutOfRange(long timeoutTicks)
    {
        using var f = new RegistryFixture();

        // On an idle session, so an implementation that skipped validation would return true instead of throwing.
        await FluentActions.Awaiting(() => f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromTicks(timeoutTicks)))
            .Should().ThrowExactlyAsync<ArgumentOutOfRangeException>().WithParameterName("timeout");
    }

    [Fact]
    public async Task WaitForRunEndAsync_InfiniteTimeout_WaitsUntilRunEnds()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        Task<bool> wait = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);

        // Infinite is accepted (no exception) and never elapses on its own.
        f.Time.Advance(RegistryFixture.Timeout - TimeSpan.FromMinutes(1));
        wait.IsCompleted.Should().BeFalse();

        run.Dispose();
        (await wait.Guard()).Should().BeTrue();
    }

    [Fact]
    public void WaitForRunEndAsync_TimeoutOutOfRange_MessageGivesTheAllowedRange()
    {
        using var f = new RegistryFixture();

        Sync(() => f.Registry.WaitForRunEndAsync(Session, TimeSpan.FromSeconds(-1)))
            .Should().Throw<ArgumentOutOfRangeException>().Which.Message.Should().Contain("Timeout.InfiniteTimeSpan or between 00:00:00 and 49.17:02:47.294");
    }

    [Fact]
    public void WaitForRunEndAsync_LargestTimerTimeout_AcceptedAndOneMillisecondMoreRejected()
    {
        using var f = new RegistryFixture();
        TimeSpan largest = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

        Sync(() => f.Registry.WaitForRunEndAsync(Session, largest)).Should().NotThrow();
        Sync(() => f.Registry.DrainAsync(largest)).Should().NotThrow();
        Sync(() => f.Registry.WaitForRunEndAsync(Session, largest + TimeSpan.FromMilliseconds(1))).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public async Task WaitForRunEndAsync_CallerContextBlocked_CompletesWithoutIt()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var blocked = new BlockedThreadSynchronizationContext();

        // Called from a UI thread that then blocks on the wait: the wait must not need that thread to finish.
        Task<bool> wait = blocked.Run(() => f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan));
        run.Dispose();

        // A wait that resumed on its caller's context would never finish: the guard turns that hang into a failure.
        (await wait.Guard()).Should().BeTrue();
        blocked.Posted.Should().Be(0);
    }
}
