using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// An abort the registry makes on a caller's thread (a supersede) runs the token's callbacks on the thread pool and
/// logs their failure from there, never through the superseding caller's <see cref="SynchronizationContext"/>.
/// </summary>
public sealed class PublishingAbortCallbackTests
{
    [Fact]
    public async Task Supersede_CallerHasASynchronizationContextAndASlowCallbackThrows_LoggedWithoutPostingToIt()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s");
        using var release = new ManualResetEventSlim();
        var failure = new InvalidOperationException("slow callback failed");
        run.AbortToken.Register(() =>
        {
            release.Wait(TestTime.HangGuard);
            throw failure;
        });
        var context = new CountingSynchronizationContext();
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            f.Registry.Start("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).Dispose();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        // Still running when the supersede returned: its failure is observed when it finishes.
        release.Set();
        using var timeout = new CancellationTokenSource(TestTime.HangGuard);
        while (!f.LogsWithEvent("AbortCallbackFailed").Any())
        {
            await Task.Delay(1, timeout.Token);
        }

        f.LogsWithEvent("AbortCallbackFailed").Single().Exception.Should().BeSameAs(failure);
        context.Posts.Should().Be(0, "the caller's context may be blocked or gone by the time the callback fails");
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
