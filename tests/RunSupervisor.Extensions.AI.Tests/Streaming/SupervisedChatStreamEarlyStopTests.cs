using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// A consumer that stops early (<c>break</c>, disposing the enumerator): the inner stream is told to stop at once,
/// <c>DisposeAsync</c> returns within the grace period at most, and the run ends <c>Completed</c> when the inner
/// stream's disposal settles in that time, <c>Aborted</c> when it does not; never <c>TimedOut</c> or
/// <c>ForceEvicted</c> for the consumer's choice (a zero grace period aside). On fake time.
/// </summary>
public sealed class SupervisedChatStreamEarlyStopTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task DisposeAsync_InnerDisposalSettlesAtOnce_ReturnsWithoutTimePassingAndRunEndsCompleted()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        var inner = new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) };
        using SupervisedChatClient client = f.Client(inner);
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        DateTimeOffset before = f.Time.GetUtcNow();

        await e.DisposeAsync().AsTask().Guard();

        f.Time.GetUtcNow().Should().Be(before, "stopping never waits for the clock");
        probe.Disposed.IsCompleted.Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeFalse();
        RunEndedEventArgs end = f.Ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.Completed);
        end.Detail.Should().BeNull();
        (await inner.Called.Guard()).IsCancellationRequested.Should().BeTrue("the inner stream is told to stop at once");
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task DisposeAsync_InnerDisposalHangs_ReturnsAtGracePeriodAndRunEndsAborted()
    {
        using var f = new RegistryFixture();
        var disposeGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => StreamBehaviours.ForeverWithSlowDisposal(disposeGate.Task, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        Task disposing = e.DisposeAsync().AsTask();
        await probe.DisposeStarted.Guard();
        f.Time.Advance(RegistryFixture.Grace - Tick);
        disposing.IsCompleted.Should().BeFalse("the disposal has the grace period to settle");
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Time.Advance(Tick);

        await disposing.Guard();
        f.Registry.IsActive(Session).Should().BeFalse("the consumer does not wait longer, nor does the session");
        RunEndedEventArgs end = f.Ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.Aborted);
        end.Detail.Should().Be(RunEnds.ConsumerStoppedText);
        end.Duration.Should().Be(RegistryFixture.Grace, "it never waits for the run's timeout");

        // Past the deadline and its eviction: nothing changes, and the late disposal settles quietly.
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        disposeGate.SetResult();
        await probe.Disposed.Guard();
        f.Ended.Should().ContainSingle("an early stop is never reported as TimedOut or ForceEvicted");
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task DisposeAsync_InnerDisposalThrows_RethrowsAndRunEndsFaulted()
    {
        using var f = new RegistryFixture();
        var error = new InvalidOperationException("dispose broke");
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => StreamBehaviours.ForeverWithSlowDisposal(Task.CompletedTask, probe, error) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        Func<Task> act = () => e.DisposeAsync().AsTask().Guard();

        (await act.Should().ThrowExactlyAsync<InvalidOperationException>()).Which.Should().BeSameAs(error);
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task DisposeAsync_ZeroGracePeriodAndDisposalHangs_RunEndsForceEvictedUntilDisposalSettles()
    {
        using var f = new RegistryFixture(grace: TimeSpan.Zero);
        var disposeGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => StreamBehaviours.ForeverWithSlowDisposal(disposeGate.Task, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        await e.DisposeAsync().AsTask().Guard();

        // With no grace period the registry evicts an aborted run at once: the one case a stop ends ForceEvicted.
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.ForceEvicted);
        f.Registry.AbandonedCount.Should().Be(1, "the disposal is still pending");
        disposeGate.SetResult();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task DisposeAsync_AfterDeadlineAbortedTheStream_ReturnsAtOnceAndRunKeepsTimedOut()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) });
        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        f.Time.Advance(RegistryFixture.Timeout);
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut);

        await e.DisposeAsync().AsTask().Guard();

        probe.Disposed.IsCompleted.Should().BeTrue();
        f.Ended.Should().ContainSingle();
    }
}
