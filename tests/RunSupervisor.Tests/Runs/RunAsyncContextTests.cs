using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// RunAsync and the caller's contexts and threads: a provider is invoked even when the caller suppressed
/// execution-context flow, neither the run's context nor a provider's own ambient state leaks to the caller's
/// continuation, the caller's completion never waits for the handlers of runs its run's leaving replaced, a start that waits for admission
/// never resumes on the caller's <see cref="SynchronizationContext"/>, and a provider blocking its thread after its run
/// ended never holds the caller.
/// </summary>
public sealed class RunAsyncContextTests
{
    private static readonly AsyncLocal<string?> ProviderLocal = new();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_CallerSuppressedExecutionContextFlow_ProviderStillRunsAndTheCallCompletes(bool generic)
    {
        using var f = new RegistryFixture();
        var invoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task call;
        using (ExecutionContext.SuppressFlow())
        {
            call = f.Registry.InvokeRunAsync(generic, "s", _ =>
            {
                invoked.SetResult();
                return Task.FromResult(7);
            });
        }

        await invoked.Task.Guard();
        await call.Guard();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task RunAsync_CallerSuppressedFlowAndProviderReturnedACompletedTask_ContinuationSeesNoRunContextNorTheProvidersAmbientState()
    {
        using var f = new RegistryFixture();
        using var returnNow = new ManualResetEventSlim();
        var providerContext = new SynchronizationContext();
        var seenByContinuation = new TaskCompletionSource<(RunContext? Run, string? Local, SynchronizationContext? Context)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using (ExecutionContext.SuppressFlow())
        {
            // The provider holds its thread until the continuation is registered, then returns a completed task: the run
            // ends as that task is attached, on the provider's pool thread, in that thread's own context, since the caller
            // let none flow. A synchronous provider may leave its own ambient state there (a logging scope's AsyncLocal,
            // a SynchronizationContext): the caller's continuation must run under none of it.
            Task<int> call = f.Registry.RunAsync("s", _ =>
            {
                returnNow.Wait(TestTime.HangGuard);
                ProviderLocal.Value = "provider's";
                SynchronizationContext.SetSynchronizationContext(providerContext);
                return Task.FromResult(7);
            });
            _ = call.ContinueWith(
                _ => seenByContinuation.SetResult((RunContext.Current, ProviderLocal.Value, SynchronizationContext.Current)),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        returnNow.Set();

        (RunContext? run, string? local, SynchronizationContext? context) = await seenByContinuation.Task.Guard();
        run.Should().BeNull();
        local.Should().BeNull("the provider's ambient state must not flow into the caller's continuation");
        context.Should().NotBeSameAs(providerContext);
    }

    [Fact]
    public async Task RunAsync_RunsLeavingAdmitsAStartThatReplacesAnotherRun_CallerCompletesBeforeThatRunsHandlersRun()
    {
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace };
        options.Lanes["L"] = 1;
        using var f = new RegistryFixture(options);
        RunHandle replaced = f.Registry.Start("b");
        using var returnNow = new ManualResetEventSlim();
        Task<int>? call = null;
        bool? callCompletedWhenReplacedRunEnded = null;
        f.Registry.RunEnded += (_, e) =>
        {
            if (e.SessionId == "b")
            {
                // A handler of the other run's end that waits (bounded) for the RunAsync caller's result.
                callCompletedWhenReplacedRunEnded = call!.Wait(TimeSpan.FromSeconds(3));
            }
        };
        call = f.Registry.RunAsync(
            "a",
            _ =>
            {
                returnNow.Wait(TestTime.HangGuard);
                return Task.FromResult(7);
            },
            new RunStartOptions { Lane = "L" });

        // Waits for lane L's slot, then supersedes b's run: admitted as run "a" leaves, inside the provider's attach.
        Task<RunHandle> waiting = f.Registry.StartAsync("b", new RunStartOptions { Lane = "L", WhenBusy = SessionBusyBehavior.Supersede }).AsTask();
        waiting.IsCompleted.Should().BeFalse();

        returnNow.Set();

        (await call.Guard()).Should().Be(7);
        using RunHandle admitted = await waiting.Guard();
        (await replaced.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        callCompletedWhenReplacedRunEnded.Should().BeTrue("the call's run had ended and its result was known: completing it does not wait for what its leaving set off on that thread");
    }

    [Fact]
    public async Task RunAsync_ProviderEvictsItsOwnRunThenBlocks_CallerCompletesWithoutWaitingForIt()
    {
        using var f = new RegistryFixture();
        using var unblock = new ManualResetEventSlim();
        Task<int> call = f.Registry.RunAsync(
            "s",
            _ =>
            {
                // With no grace period an abort evicts at once, on this very thread, while the provider still runs.
                f.Registry.TryAbort("s", reason: "stop").Should().BeTrue();
                unblock.Wait(TestTime.HangGuard);
                return Task.FromResult(7);
            },
            new RunStartOptions { GracePeriod = TimeSpan.Zero });

        try
        {
            Func<Task> awaiting = () => call.Guard();
            (await awaiting.Should().ThrowAsync<RunEvictedException>()).Which.SessionId.Should().Be("s");
        }
        finally
        {
            unblock.Set();
        }
    }

    [Fact]
    public async Task RunAsync_WaitingStartCalledUnderASynchronizationContext_AdmissionNeverPostsToIt()
    {
        using var f = new RegistryFixture();
        RunHandle blocker = f.Registry.Start("s");
        var context = new CountingSynchronizationContext();
        Task<int> call;
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            call = f.Registry.RunAsync("s", _ => Task.FromResult(7), new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        blocker.Dispose();

        (await call.Guard()).Should().Be(7);

        // A UI or request context may be blocked or gone by the time the start is admitted.
        context.Posts.Should().Be(0);
    }

    /// <summary>Counts what is posted to it and runs it on the thread pool, so nothing hangs when something is.</summary>
    private sealed class CountingSynchronizationContext : SynchronizationContext
    {
        private int _posts;

        public int Posts => Volatile.Read(ref _posts);

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref _posts);
            ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }
}
