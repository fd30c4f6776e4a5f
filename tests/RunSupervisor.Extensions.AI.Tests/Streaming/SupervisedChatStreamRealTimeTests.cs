using System.Diagnostics;
using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// The two streaming bounds on the real clock, with generous margins: an early stop returns within the grace period
/// although the inner disposal hangs, and a caller's cancellation reaches a consumer whose inner stream blocks its
/// thread, by the grace period. Everything else is on fake time.
/// </summary>
public sealed class SupervisedChatStreamRealTimeTests : IDisposable
{
    private const string Session = "conversation-1";
    private static readonly TimeSpan Grace = TimeSpan.FromMilliseconds(200);
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();
    private readonly ActiveRunRegistry _registry = new(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(1), GracePeriod = Grace });

    public void Dispose()
    {
        _registry.Dispose();
        _unobserved.Dispose();
    }

    [Fact]
    public async Task DisposeAsync_InnerDisposalHangs_ReturnsWithinGracePeriodNotTimeout()
    {
        var disposeGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using var client = new SupervisedChatClient(new FakeChatClient { Stream = _ => StreamBehaviours.ForeverWithSlowDisposal(disposeGate.Task, probe) }, _registry);
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        RunInfo run = _registry.GetActiveRuns().Single();
        Task<RunEndReason> ended = WaitForEndAsync(run.RunId);

        var clock = Stopwatch.StartNew();
        await e.DisposeAsync().AsTask().Guard();
        clock.Stop();

        clock.Elapsed.Should().BeGreaterThanOrEqualTo(Grace - TimeSpan.FromMilliseconds(20)).And.BeLessThan(TimeSpan.FromSeconds(5));
        (await ended.Guard()).Should().Be(RunEndReason.Aborted);
        _registry.IsActive(Session).Should().BeFalse();
        disposeGate.SetResult();
        await probe.Disposed.Guard();
    }

    [Fact]
    public async Task MoveNextAsync_CallerCancelsWhileInnerBlocksItsThread_ThrowsCallersCancellationWithinGracePeriod()
    {
        using var release = new ManualResetEventSlim();
        using var cts = new CancellationTokenSource();
        using var client = new SupervisedChatClient(new FakeChatClient { Stream = _ => BlocksItsThread(release) }, _registry);
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session), cts.Token).GetAsyncEnumerator();
        try
        {
            (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
            Task<bool> blocked = e.MoveNextAsync().AsTask();
            long runId = _registry.GetActiveRuns().Single().RunId;
            Task<RunEndReason> ended = WaitForEndAsync(runId);

            var clock = Stopwatch.StartNew();
            await cts.CancelAsync();
            OperationCanceledException ex = (await FluentActions.Awaiting(() => blocked.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which;
            clock.Stop();

            ex.CancellationToken.Should().Be(cts.Token);
            clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
            (await ended.Guard()).Should().Be(RunEndReason.ForceEvicted, "the inner stream never gave its thread back");
        }
        finally
        {
            release.Set();
            await e.DisposeAsync();
        }
    }

    /// <summary>Yields one update, then blocks its thread synchronously until <paramref name="release"/> is set, ignoring any token.</summary>
    private static async IAsyncEnumerable<ChatResponseUpdate> BlocksItsThread(ManualResetEventSlim release)
    {
        await Task.Yield();
        yield return Behaviours.Update(0);
        release.Wait(CancellationToken.None);
        yield return Behaviours.Update(1);
    }

    private Task<RunEndReason> WaitForEndAsync(long runId)
    {
        var ended = new TaskCompletionSource<RunEndReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.RunEnded += (_, args) =>
        {
            if (args.RunId == runId)
            {
                ended.TrySetResult(args.Reason);
            }
        };
        return ended.Task;
    }
}
