using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// Time the consumer spends outside the stream (between its own <c>MoveNextAsync</c> calls) is not the provider's
/// hang: it counts toward the run's deadline like any time, but never toward the grace period or the idle timeout, so a
/// well-behaved provider never ends <c>ForceEvicted</c> or <c>Stalled</c> because of a slow consumer. On fake time.
/// </summary>
public sealed class SupervisedChatStreamSlowConsumerTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task MoveNextAsync_ConsumerAwayPastDeadlineAndGrace_RunEndsTimedOutNotForceEvicted()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: true, probe) });
        await using IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        // The consumer is busy elsewhere for twice deadline + grace.
        f.Time.Advance(RegistryFixture.Timeout);
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace + RegistryFixture.Grace);

        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.TimedOut);
        f.Registry.AbandonedCount.Should().Be(0);
        probe.Disposed.IsCompleted.Should().BeTrue();
        await FluentActions.Awaiting(() => e.MoveNextAsync().AsTask().Guard()).Should().ThrowExactlyAsync<RunTimedOutException>();
    }

    [Fact]
    public async Task MoveNextAsync_ConsumerGapsLongerThanGraceWithinDeadline_RunEndsCompleted()
    {
        using var f = new RegistryFixture(grace: TimeSpan.FromSeconds(1));
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => Behaviours.Updates(3, ct) });

        // Three updates, three seconds of the consumer's own work after each: 9 s of a 10 s run, each gap 3 × the grace.
        List<string> texts = await ConsumeAsync(
            client.GetStreamingResponseAsync(Prompt, Conversation(Session)),
            _ => f.Time.Advance(TimeSpan.FromSeconds(3))).Guard();

        texts.Should().Equal("u0", "u1", "u2");
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task MoveNextAsync_ConsumerAwayLongerThanTheIdleTimeout_RunIsNotStalledAndEndsCompleted()
    {
        using var f = new RegistryFixture();
        TimeSpan idle = TimeSpan.FromSeconds(1);
        using SupervisedChatClient client = f.Client(
            new FakeChatClient { Stream = ct => Behaviours.Updates(3, ct) },
            o => o.RunStartOptions = new RunStartOptions { IdleTimeout = idle });

        // After each update the consumer works for three idle periods (9 s of the 10 s run): the provider is not silent,
        // the consumer is busy.
        List<string> texts = await ConsumeAsync(
            client.GetStreamingResponseAsync(Prompt, Conversation(Session)),
            _ => f.Time.Advance(idle * 3)).Guard();

        texts.Should().Equal("u0", "u1", "u2");
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task MoveNextAsync_ConsumerReturnsAfterAPauseAndTheInnerStreamThenStalls_StalledOneIdlePeriodAfterTheConsumerAsked()
    {
        using var f = new RegistryFixture();
        TimeSpan idle = TimeSpan.FromSeconds(1);
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(
            new FakeChatClient { Stream = ct => Behaviours.UpdatesThenStallsHonouringToken(1, stalled, ct) },
            o => o.RunStartOptions = new RunStartOptions { IdleTimeout = idle });
        await using IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();

        // The consumer keeps the first update for five idle periods: nothing is due while it holds the turn.
        f.Time.Advance(idle * 5);
        f.Ended.Should().BeEmpty();

        // Then it asks for more and the provider falls silent: the idle clock restarts at the ask.
        ValueTask<bool> next = e.MoveNextAsync();
        await stalled.Task.Guard();
        f.Time.Advance(idle - Tick);
        f.Ended.Should().BeEmpty("the idle timeout counts from the consumer's ask, not from the last update");
        f.Time.Advance(Tick);

        RunTimedOutException error = (await FluentActions.Awaiting(() => next.AsTask().Guard()).Should().ThrowAsync<RunTimedOutException>()).Which;
        error.Reason.Should().Be(RunEndReason.Stalled);
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Stalled);
    }
}
