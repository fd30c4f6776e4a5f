using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// RunAsync and the caller's contexts and threads: a provider is invoked even when the caller suppressed
/// execution-context flow, the run's context never leaks to the caller's continuation, a start that waits for admission
/// never resumes on the caller's <see cref="SynchronizationContext"/>, and a provider blocking its thread after its run
/// ended never holds the caller.
/// </summary>
public sealed class RunAsyncContextTests
{
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
    public async Task RunAsync_CallerSuppressedFlowAndProviderReturnedACompletedTask_ContinuationSeesNoRunContext()
    {
        using var f = new RegistryFixture();
        using var returnNow = new ManualResetEventSlim();
        var seenByContinuation = new TaskCompletionSource<RunContext?>(TaskCreationOptions.RunContinuationsAsynchronously);
        using (ExecutionContext.SuppressFlow())
        {
            // The provider holds its thread until the continuation is registered, then returns a completed task: the run
            // ends as that task is attached, and the continuation runs on the provider's pool thread, in that thread's
            // own context, since the caller let none flow.
            Task<int> call = f.Registry.RunAsync("s", _ =>
            {
                returnNow.Wait(TestTime.HangGuard);
                return Task.FromResult(7);
            });
            _ = call.ContinueWith(
                _ => seenByContinuation.SetResult(RunContext.Current),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        returnNow.Set();

        (await seenByContinuation.Task.Guard()).Should().BeNull();
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
