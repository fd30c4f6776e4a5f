using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// An enumerator its consumer walks away from (never disposed) leaks nothing: once the run has ended and the inner
/// stream's own pending call has settled, the inner stream is disposed and the run leaves the abandoned ledger,
/// without the consumer; after a supersede too. On fake time.
/// </summary>
public sealed class SupervisedChatStreamAbandonmentTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task MoveNextAsync_AbandonedWithInnerMovePendingAndEvicted_LeavesLedgerAndDisposesInnerWhenMoveSettles()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        Task<bool> abandoned = e.MoveNextAsync().AsTask();
        await stalled.Task.Guard();

        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(RegistryFixture.Grace);
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.ForceEvicted);
        f.Registry.AbandonedCount.Should().Be(1, "the inner stream's move is still pending");

        gate.SetResult();
        await probe.Disposed.Guard();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0);

        // Observed last, so nothing above depended on it.
        await FluentActions.Awaiting(() => abandoned.Guard()).Should().ThrowExactlyAsync<RunEvictedException>();
    }

    [Fact]
    public async Task MoveNextAsync_AbandonedBetweenUpdates_RunEndsTimedOutAtDeadlineAndInnerIsDisposed()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        f.Time.Advance(RegistryFixture.Timeout);

        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut);
        await probe.Disposed.Guard();
        f.Time.Advance(RegistryFixture.Grace);
        f.Ended.Should().ContainSingle("nothing was pending, so nothing is evicted");
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task MoveNextAsync_AbandonedWithInnerMovePendingAndSuperseded_LeavesLedgerWhenMoveSettles()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        Task<bool> abandoned = e.MoveNextAsync().AsTask();
        await stalled.Task.Guard();

        using RunHandle newer = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Superseded);
        f.Registry.AbandonedCount.Should().Be(1);

        gate.SetResult();
        await probe.Disposed.Guard();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0);
        newer.IsCurrent.Should().BeTrue();
        await FluentActions.Awaiting(() => abandoned.Guard()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task MoveNextAsync_AbandonedBetweenUpdatesAndSuperseded_InnerIsDisposedAndLeavesLedgerAtOnce()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        using RunHandle newer = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Superseded);
        await probe.Disposed.Guard();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0, "the inner stream settled as soon as it was disposed, without the consumer");
        (await FluentActions.Awaiting(() => e.MoveNextAsync().AsTask().Guard()).Should().ThrowAsync<OperationCanceledException>())
            .WithMessage("*superseded*");
    }
}
