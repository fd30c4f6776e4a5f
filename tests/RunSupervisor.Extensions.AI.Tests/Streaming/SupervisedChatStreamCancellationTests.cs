using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// Cancelling the caller's token (given to <c>GetStreamingResponseAsync</c>, or through <c>WithCancellation</c>) stops
/// the stream: nothing is delivered after it, and the consumer gets <see cref="OperationCanceledException"/> carrying
/// that token, as from <c>GetResponseAsync</c>, even when the inner stream ignores its token; the run's own end is the
/// registry's (<c>Aborted</c>, or <c>ForceEvicted</c> past the grace period). On fake time.
/// </summary>
public sealed class SupervisedChatStreamCancellationTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task MoveNextAsync_CallTokenCancelledBetweenUpdatesOfStreamIgnoringIt_ThrowsCallersCancellationAndDeliversNothingMore()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) });
        var received = new List<int>();

        Func<Task> act = () => ConsumeAsync(
            client.GetStreamingResponseAsync(Prompt, Conversation(Session), cts.Token),
            count =>
            {
                received.Add(count);
                if (count == 2)
                {
                    cts.Cancel();
                }
            }).Guard();

        OperationCanceledException ex = (await act.Should().ThrowAsync<OperationCanceledException>()).Which;
        ex.CancellationToken.Should().Be(cts.Token);
        received.Should().Equal(1, 2);
        probe.Disposed.IsCompleted.Should().BeTrue();
        RunEndedEventArgs end = f.Ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.Aborted);
        end.Detail.Should().Be("the caller's cancellation token was cancelled");
    }

    [Fact]
    public async Task MoveNextAsync_EnumeratorTokenCancelledWhileInnerStallsIgnoringIt_ThrowsCallersCancellationAtGraceAndRunIsForceEvicted()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task, probe) });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), cancellationToken: cts.Token);
        await stalled.Task.Guard();
        await cts.CancelAsync();
        f.Time.Advance(RegistryFixture.Grace - Tick);
        consume.IsCompleted.Should().BeFalse("the run has the grace period to settle, as with GetResponseAsync");
        f.Time.Advance(Tick);

        OperationCanceledException ex = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which;
        ex.CancellationToken.Should().Be(cts.Token, "the caller hears its own cancellation whatever the run's reason");
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.ForceEvicted);
        gate.SetResult();
        await probe.Disposed.Guard();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task MoveNextAsync_UpdateArrivesAfterCallerCancelled_IsNotDeliveredAndRunEndsAborted()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task) });
        var received = new List<int>();

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session), cts.Token), received.Add);
        await stalled.Task.Guard();
        await cts.CancelAsync();
        gate.SetResult();

        OperationCanceledException ex = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which;
        ex.CancellationToken.Should().Be(cts.Token);
        received.Should().Equal([1], "the late update came after the caller's cancellation");
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Aborted, "the stream settled within the grace period");
    }

    [Fact]
    public async Task MoveNextAsync_CallTokenCancelledBeforeFirstMove_ThrowsCallersCancellationAndStartsNothing()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);
        await cts.CancelAsync();

        Func<Task> act = () => ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session), cts.Token)).Guard();

        (await act.Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        inner.Calls.Should().Be(0);
        f.Ended.Should().BeEmpty();
    }
}
