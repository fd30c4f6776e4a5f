using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// A stream cut off by its run's end never looks complete: an inner stream that answers the abort with a quiet
/// <c>yield break</c>, or a deadline that passes while the consumer holds the stream, gives the consumer the end's
/// exception (<see cref="RunTimedOutException"/> at the deadline), never <see langword="false"/>. On fake time.
/// </summary>
public sealed class SupervisedChatStreamTruncationTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task MoveNextAsync_InnerEndsQuietlyAtDeadline_ThrowsRunTimedOutException()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => StreamBehaviours.UpdatesThenEndsQuietlyOnCancel(2, stalled, ct) });
        var received = new List<int>();

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), received.Add);
        await stalled.Task.Guard();
        f.Time.Advance(RegistryFixture.Timeout);

        RunTimedOutException ex = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>()).Which;
        ex.Timeout.Should().Be(RegistryFixture.Timeout);
        ex.InnerException.Should().BeAssignableTo<OperationCanceledException>();
        received.Should().Equal(1, 2);
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.TimedOut);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task MoveNextAsync_InnerEndsQuietlyAfterTryAbort_ThrowsOperationCanceledNotFalse()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => StreamBehaviours.UpdatesThenEndsQuietlyOnCancel(1, stalled, ct) });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        await stalled.Task.Guard();
        f.Registry.TryAbort(Session, reason: "operator stop").Should().BeTrue();

        await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>();
        RunEndedEventArgs end = f.Ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.Aborted);
        end.Detail.Should().Be("operator stop");
    }

    [Fact]
    public async Task MoveNextAsync_DeadlinePassesWhileConsumerHoldsStream_NextMoveThrowsRunTimedOutException()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: true, probe) });
        await using IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        f.Time.Advance(RegistryFixture.Timeout);
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut, "the inner stream was between updates: disposing it settled it");
        probe.Disposed.IsCompleted.Should().BeTrue("the stream is stopped without waiting for the consumer");

        await FluentActions.Awaiting(() => e.MoveNextAsync().AsTask().Guard()).Should().ThrowExactlyAsync<RunTimedOutException>();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeFalse("an ended stream stays ended");
    }

    [Fact]
    public async Task MoveNextAsync_UpdateArrivesAfterDeadlineAbort_IsNotDelivered()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task, probe) });
        var received = new List<int>();

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), received.Add);
        await stalled.Task.Guard();
        f.Time.Advance(RegistryFixture.Timeout);
        gate.SetResult();

        await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>("the late update came after the abort");
        received.Should().Equal([1], "the update that arrived after the abort was dropped");
        probe.Disposed.IsCompleted.Should().BeTrue();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.TimedOut, "the stream settled within the grace period");
    }
}
