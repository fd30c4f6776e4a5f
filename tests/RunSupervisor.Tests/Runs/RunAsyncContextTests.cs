using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// RunAsync and the caller's contexts: a provider is invoked even when the caller suppressed execution-context flow,
/// and a start that waits for admission never resumes on the caller's <see cref="SynchronizationContext"/>.
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
