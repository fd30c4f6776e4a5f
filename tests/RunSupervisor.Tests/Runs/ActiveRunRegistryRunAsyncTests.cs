using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>
/// and its non-generic overload. Theories with <c>generic</c> run the same scenario through both overloads
/// (see <see cref="AsyncTestHelpers.InvokeRunAsync"/>).
/// </summary>
public sealed class ActiveRunRegistryRunAsyncTests
{
    private const string Session = "s1";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderInvoked_ReceivesAbortTokenCancelledExactlyAtDeadline(bool generic)
    {
        using var f = new RegistryFixture();
        var invoked = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        var provider = new TaskCompletionSource<int>();

        Task call = f.Registry.InvokeRunAsync(generic, Session, ct =>
        {
            invoked.SetResult(ct);
            return provider.Task;
        });

        // The provider is invoked on the thread pool, with a real (cancellable) token.
        CancellationToken received = await invoked.Task.Guard();
        received.CanBeCanceled.Should().BeTrue();
        received.IsCancellationRequested.Should().BeFalse();

        f.Time.Advance(RegistryFixture.Timeout - TestTime.Tick);
        received.IsCancellationRequested.Should().BeFalse("the deadline has not been reached yet");

        f.Time.Advance(TestTime.Tick);
        received.IsCancellationRequested.Should().BeTrue("the run's abort token is cancelled at the deadline");
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.Status.Should().Be(RunStatus.Aborting);

        // Settle it so the call finishes inside the test.
        provider.SetCanceled(received);
        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderBlocksItsThread_ReturnsAtOnceAndInvokesProviderOnThreadPoolWithCallerExecutionContext(bool generic)
    {
        using var f = new RegistryFixture();
        using var release = new ManualResetEventSlim(false);
        var flowing = new AsyncLocal<string> { Value = "caller's context" };
        var invoked = new TaskCompletionSource<(int ThreadId, bool PoolThread, string? Flowed)>(TaskCreationOptions.RunContinuationsAsynchronously);
        int callerThread = Environment.CurrentManagedThreadId;
        Task call;
        try
        {
            call = f.Registry.InvokeRunAsync(generic, Session, _ =>
            {
                invoked.SetResult((Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread, flowing.Value));

                // A broken SDK that blocks its calling thread before returning a task.
                release.Wait(TestTime.HangGuard);
                return Task.FromResult(5);
            });

            // RunAsync returned while the provider is (or is about to be) blocked: it did not wait for the delegate.
            call.IsCompleted.Should().BeFalse();
            (int threadId, bool poolThread, string? flowed) = await invoked.Task.Guard();
            threadId.Should().NotBe(callerThread, "the provider is not invoked on the calling thread");
            poolThread.Should().BeTrue("the provider is invoked on the thread pool");
            flowed.Should().Be("caller's context", "the caller's ExecutionContext flows to the provider");
            f.Registry.IsActive(Session).Should().BeTrue("the run is registered before the provider is invoked");
            call.IsCompleted.Should().BeFalse("the provider has not returned yet");
        }
        finally
        {
            release.Set();
        }

        await call.Guard();
        if (generic)
        {
            (await ((Task<int>)call).Guard()).Should().Be(5);
        }

        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderCompletes_ReturnsResultAndRunEndsCompleted(bool generic)
    {
        using var f = new RegistryFixture();
        var provider = new TaskCompletionSource<int>();

        Task call = f.Registry.InvokeRunAsync(generic, Session, _ => provider.Task);
        f.Registry.IsActive(Session).Should().BeTrue("the run owns the session while the provider is pending");
        call.IsCompleted.Should().BeFalse();

        provider.SetResult(42);
        await call.Guard();

        if (generic)
        {
            (await ((Task<int>)call).Guard()).Should().Be(42);
        }

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);

        // The session is free: a new run starts without SessionBusyException.
        using RunHandle next = f.Registry.Start(Session);
        next.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task RunAsync_ProviderCompletesSynchronously_ReturnsResultAndRunEndsCompleted()
    {
        using var f = new RegistryFixture();

        int result = await f.Registry.RunAsync(Session, _ => Task.FromResult(7)).Guard();

        result.Should().Be(7);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderFaults_PropagatesSameExceptionAndRunEndsFaulted(bool generic)
    {
        using var f = new RegistryFixture();
        var boom = new InvalidOperationException("provider failed");
        var provider = new TaskCompletionSource<int>();

        Task call = f.Registry.InvokeRunAsync(generic, Session, _ => provider.Task);
        provider.SetException(boom);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<InvalidOperationException>())
            .Which.Should().BeSameAs(boom);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderThrowsBeforeReturningTask_PropagatesSameExceptionAndRunEndsFaulted(bool generic)
    {
        using var f = new RegistryFixture();
        var boom = new InvalidOperationException("provider threw synchronously");

        // Assigned without awaiting: RunAsync itself must not throw, the failure travels through its task.
        Task call = f.Registry.InvokeRunAsync(generic, Session, _ => throw boom);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<InvalidOperationException>())
            .Which.Should().BeSameAs(boom);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderReturnsNullTask_ThrowsInvalidOperationAndRunEndsFaulted(bool generic)
    {
        using var f = new RegistryFixture();

        Task call = f.Registry.InvokeRunAsync(generic, Session, _ => null!);

        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<InvalidOperationException>();
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_NullProvider_ThrowsArgumentNullAndStartsNoRun(bool generic)
    {
        using var f = new RegistryFixture();

        await FluentActions.Awaiting(() => f.Registry.InvokeRunAsync(generic, Session, null!))
            .Should().ThrowExactlyAsync<ArgumentNullException>().WithParameterName("provider");

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunStarted").Should().BeEmpty("no run may be started for an invalid call");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderHonoursTokenAtDeadline_ThrowsRunTimedOutAndRunEndsTimedOut(bool generic)
    {
        using var f = new RegistryFixture();

        // A per-run timeout different from the registry's, so the exception's Timeout must come from the run.
        TimeSpan timeout = TimeSpan.FromMinutes(2);
        Task call = f.Registry.InvokeRunAsync(generic, Session, HonourTokenAsync, new RunStartOptions { Timeout = timeout });
        f.Registry.TryGetRun(Session, out RunInfo? run).Should().BeTrue();

        f.Time.Advance(timeout - TestTime.Tick);
        call.IsCompleted.Should().BeFalse();
        f.Time.Advance(TestTime.Tick);

        RunTimedOutException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>()).Which;
        ex.SessionId.Should().Be(Session);
        ex.RunId.Should().Be(run!.RunId);
        ex.Timeout.Should().Be(timeout);
        ex.InnerException.Should().BeAssignableTo<OperationCanceledException>("the provider's cancellation is kept as the cause");
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.AbandonedCount.Should().Be(0, "the provider settled, nothing is left pending");
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderIgnoresToken_ThrowsRunEvictedAtDeadlinePlusGraceAndProviderIsAbandoned(bool generic)
    {
        using var f = new RegistryFixture();

        // The provider runs on the thread pool; once it has returned its task, settling that task settles the run.
        PendingRunAsync pending = await PendingRunAsync.StartAsync(f, generic, Session);
        (Task call, TaskCompletionSource<int> hang, RunInfo run) = (pending.Call, pending.Provider, pending.Run);

        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(RegistryFixture.Grace - TestTime.Tick);

        // One tick before the eviction instant the run is still registered and has not ended. RunAsync completes
        // only from the run's end, so it cannot have completed (checking the run's state avoids a racy "not yet").
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Ended.Should().BeEmpty();
        call.IsCompleted.Should().BeFalse();

        f.Time.Advance(TestTime.Tick);

        RunEvictedException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunEvictedException>()).Which;
        ex.SessionId.Should().Be(Session);
        ex.RunId.Should().Be(run!.RunId);
        ex.Age.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);

        // Evicted is not finished: the still-pending provider task is in the abandoned ledger...
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.Should().Be(
            new AbandonedRunInfo(Session, run.RunId, run.StartedAt, run.StartedAt + RegistryFixture.Timeout + RegistryFixture.Grace));

        // ...until it settles (the TaskCompletionSource runs the registry's continuation synchronously).
        hang.SetResult(1);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_ProviderIgnoresAbortButCompletesWithinGrace_ReturnsResultAndRunEndsTimedOut(bool generic)
    {
        using var f = new RegistryFixture();
        var late = new TaskCompletionSource<int>();
        var invoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        Task call = f.Registry.InvokeRunAsync(generic, Session, _ =>
        {
            invoked.SetResult();
            return late.Task;
        });
        await invoked.Task.Guard();
        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(RegistryFixture.Grace - TestTime.Tick);

        // Like Polly's optimistic timeout: a result that arrives after the abort but within the grace period is
        // still the caller's result; only the run's end reason records the timeout.
        late.SetResult(42);
        await call.Guard();

        if (generic)
        {
            (await ((Task<int>)call).Guard()).Should().Be(42);
        }

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.AbandonedCount.Should().Be(0);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_CallerTokenCancelledMidRun_AbortsRunAndThrowsOperationCanceledWithCallerToken(bool generic)
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var invoked = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);

        Task call = f.Registry.InvokeRunAsync(generic, Session, ct =>
        {
            invoked.SetResult(ct);
            return HonourTokenAsync(ct);
        }, cancellationToken: cts.Token);
        f.Registry.IsActive(Session).Should().BeTrue();
        CancellationToken received = await invoked.Task.Guard();

        cts.Cancel();

        received.IsCancellationRequested.Should().BeTrue("the caller's cancellation aborts the run");
        OperationCanceledException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which;
        ex.CancellationToken.Should().Be(cts.Token);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_CallerTokenAlreadyCancelled_ReturnsCanceledTaskAndStartsNoRun(bool generic)
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        bool invoked = false;

        Task call = f.Registry.InvokeRunAsync(generic, Session, _ =>
        {
            invoked = true;
            return Task.FromResult(1);
        }, cancellationToken: cts.Token);

        call.IsCanceled.Should().BeTrue();
        (await FluentActions.Awaiting(() => call).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token);
        invoked.Should().BeFalse();
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunStarted").Should().BeEmpty();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_SupersededWhilePending_ThrowsOperationCanceledAndNewRunStaysCurrent(bool generic)
    {
        using var f = new RegistryFixture();
        PendingRunAsync pending = await PendingRunAsync.StartAsync(f, generic, Session);
        (Task call, RunInfo old, CancellationToken received) = (pending.Call, pending.Run, pending.Token);

        using RunHandle replacement = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        // The exception names the run's abort token, which is the token the provider was given.
        OperationCanceledException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which;
        ex.CancellationToken.Should().Be(received);
        received.IsCancellationRequested.Should().BeTrue();
        replacement.IsCurrent.Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? current).Should().BeTrue();
        current!.RunId.Should().Be(replacement.RunId);
        f.Ended.Should().ContainSingle().Which.Args.Should().Match<RunEndedEventArgs>(
            e => e.RunId == old!.RunId && e.Reason == RunEndReason.Superseded);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task RunAsync_RegistryDisposedWhilePending_ThrowsOperationCanceled(bool generic, bool providerHonoursToken)
    {
        using var f = new RegistryFixture();
        var hang = new TaskCompletionSource<int>();

        Task call = f.Registry.InvokeRunAsync(generic, Session, ct => providerHonoursToken ? HonourTokenAsync(ct) : hang.Task);

        f.Registry.Dispose();

        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_SessionBusy_ThrowsSessionBusyAndLeavesExistingRunUntouched(bool generic)
    {
        using var f = new RegistryFixture();
        using RunHandle existing = f.Registry.Start(Session);
        bool invoked = false;

        SessionBusyException ex = (await FluentActions.Awaiting(() => f.Registry.InvokeRunAsync(generic, Session, _ =>
            {
                invoked = true;
                return Task.FromResult(1);
            }))
            .Should().ThrowExactlyAsync<SessionBusyException>()).Which;

        ex.SessionId.Should().Be(Session);
        ex.RunId.Should().Be(existing.RunId);
        invoked.Should().BeFalse("the provider must not be called for a run that never started");
        existing.IsCurrent.Should().BeTrue();
        existing.Status.Should().Be(RunStatus.Running);
        existing.AbortToken.IsCancellationRequested.Should().BeFalse();
        existing.Completion.IsCompleted.Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        f.Ended.Should().BeEmpty();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_TryAbortWhileProviderHonoursToken_PropagatesProviderCancellationAndRunEndsAborted(bool generic)
    {
        using var f = new RegistryFixture();
        var invoked = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        OperationCanceledException? thrownByProvider = null;

        Task call = f.Registry.InvokeRunAsync(generic, Session, async ct =>
        {
            invoked.SetResult(ct);
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException inner)
            {
                // The provider surfaces its own cancellation exception; RunAsync must pass this very instance on.
                thrownByProvider = new OperationCanceledException("provider observed the abort", inner, ct);
                throw thrownByProvider;
            }

            return 0;
        });
        CancellationToken received = await invoked.Task.Guard();
        received.IsCancellationRequested.Should().BeFalse();

        f.Registry.TryAbort(Session).Should().BeTrue();

        received.IsCancellationRequested.Should().BeTrue("TryAbort cancels the token the provider was given");
        OperationCanceledException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<OperationCanceledException>()).Which;
        ex.Should().BeSameAs(thrownByProvider);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task RunAsync_NullTaskAndSupersededAndDisposed_MessagesSayWhatHappened()
    {
        using var f = new RegistryFixture();

        (await FluentActions.Awaiting(() => f.Registry.RunAsync(Session, _ => (Task<int>)null!).Guard()).Should().ThrowAsync<InvalidOperationException>())
            .Which.Message.Should().Contain("null Task");

        var hang = new TaskCompletionSource<int>();
        Task<int> superseded = f.Registry.RunAsync(Session, _ => hang.Task);
        using (f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }))
        {
        }

        (await FluentActions.Awaiting(() => superseded.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.Message.Should().Contain("was superseded by run");

        Task<int> disposed = f.Registry.RunAsync(Session, _ => hang.Task);
        f.Registry.Dispose();
        (await FluentActions.Awaiting(() => disposed.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.Message.Should().Contain("before its provider settled");
    }

    [Fact]
    public async Task RunAsyncAndStartAsync_BadInputOrDisposedRegistryWithCancelledToken_ThrowRatherThanReturningCanceled()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        // Bad input is reported as bad input, even when the caller has already given up.
        Sync(() => f.Registry.RunAsync(" ", _ => Task.FromResult(1), cancellationToken: cts.Token)).Should().Throw<ArgumentException>();
        Sync(() => f.Registry.RunAsync(" ", _ => Task.CompletedTask, cancellationToken: cts.Token)).Should().Throw<ArgumentException>();
        var badOptions = new RunStartOptions { Timeout = TimeSpan.FromDays(-1) };
        Sync(() => f.Registry.RunAsync(Session, _ => Task.FromResult(1), badOptions, cts.Token)).Should().Throw<ArgumentOutOfRangeException>();
        Sync(() => f.Registry.RunAsync(Session, _ => Task.CompletedTask, badOptions, cts.Token)).Should().Throw<ArgumentOutOfRangeException>();
        Sync(() => f.Registry.StartAsync(" ", cancellationToken: cts.Token)).Should().Throw<ArgumentException>();
        Sync(() => f.Registry.StartAsync(Session, badOptions, cts.Token)).Should().Throw<ArgumentOutOfRangeException>();
        Sync(() => f.Registry.StartAsync(Session, new RunStartOptions { Lane = "no-such-lane" }, cts.Token)).Should().Throw<ArgumentException>();
        f.Registry.Dispose();
        Sync(() => f.Registry.RunAsync(Session, _ => Task.FromResult(1), cancellationToken: cts.Token)).Should().Throw<ObjectDisposedException>();
        Sync(() => f.Registry.RunAsync(Session, _ => Task.CompletedTask, cancellationToken: cts.Token)).Should().Throw<ObjectDisposedException>();
        Sync(() => f.Registry.StartAsync(Session, cancellationToken: cts.Token)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task RunAsync_ProviderNeverSettlesOnARunStartedLater_EvictedAgeIsMeasuredFromTheRunsStart()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromHours(3));
        var hang = new TaskCompletionSource<int>();

        Task<int> call = f.Registry.RunAsync(Session, _ => hang.Task);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunEvictedException>())
            .Which.Age.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
    }
}
