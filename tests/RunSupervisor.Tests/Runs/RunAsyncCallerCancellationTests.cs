using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// A caller that cancels hears its own cancellation, whatever the run's reason: the run still ends as the registry
/// decides (ForceEvicted when the provider ignores the abort), and events and logs say so.
/// </summary>
public sealed class RunAsyncCallerCancellationTests
{
    private const string Session = "s1";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_CallerCancelsAndTheProviderIgnoresIt_OperationCanceledWithTheCallersTokenAtTheEviction(bool generic)
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var invoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hang = new TaskCompletionSource<int>();
        Task call = f.Registry.InvokeRunAsync(generic, Session, _ =>
        {
            invoked.SetResult();
            return hang.Task;
        }, cancellationToken: cts.Token);
        await invoked.Task.Guard();

        await cts.CancelAsync();
        call.IsCompleted.Should().BeFalse("the run is aborting: its provider has a grace period to settle");
        f.Time.Advance(RegistryFixture.Grace);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token);
        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.ForceEvicted, "the run's own end stays honest in events and logs");
        ended.Detail.Should().Contain(RunEndsText.CallerCancelled);
        f.Registry.AbandonedCount.Should().Be(1);
        hang.SetResult(0);
    }

    [Fact]
    public async Task RunAsync_CallerCancelsAndTheProviderStillReturns_TheResultStands()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var proceed = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<int> call = f.Registry.RunAsync(Session, _ => proceed.Task, cancellationToken: cts.Token);

        await cts.CancelAsync();
        proceed.SetResult(42);

        (await call.Guard()).Should().Be(42, "a provider that returns after its abort still returns its result");
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    /// <summary>The abort text a caller's cancellation gives the run.</summary>
    private static class RunEndsText
    {
        public const string CallerCancelled = "the caller's cancellation token was cancelled";
    }

    [Fact]
    public async Task RunAsync_CallerCancelsOnceItsWaitingStartIsAdmittedButBeforeItHeard_TheProviderNeverRuns()
    {
        // The admission reaches the caller's task through a work item of its own; a cancellation in between is, to the
        // caller, a cancellation while it waited. The holder's RunEnded handler runs in exactly that window.
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        RunHandle holder = f.Registry.Start(Session);
        f.Registry.RunEnded += (_, e) =>
        {
            if (e.RunId == holder.RunId)
            {
                cts.Cancel();
            }
        };
        int calls = 0;
        Task<int> waiting = f.Registry.RunAsync(
            Session,
            _ =>
            {
                Interlocked.Increment(ref calls);
                return Task.FromResult(1);
            },
            new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait },
            cts.Token);
        f.Registry.GetQueuedCount(Session).Should().Be(1);

        holder.Dispose();

        (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        calls.Should().Be(0, "the caller cancelled before its turn could run");
        f.Ended.Select(e => e.Args.Reason).Should().Equal(RunEndReason.Completed, RunEndReason.Aborted);
        f.Registry.IsActive(Session).Should().BeFalse();
    }
}
