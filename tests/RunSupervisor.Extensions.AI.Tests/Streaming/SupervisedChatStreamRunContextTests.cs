using System.Collections.Concurrent;
using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.Streaming;

/// <summary>
/// <see cref="RunContext.Current"/> is the stream's run inside every inner call (creating the stream, each
/// <c>MoveNextAsync</c> and its awaits, the disposal), and never leaks back to the consumer. On fake time.
/// </summary>
public sealed class SupervisedChatStreamRunContextTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task GetStreamingResponseAsync_InnerCallsRun_SeeTheRunsContextInEveryMoveAndInDisposal()
    {
        using var f = new RegistryFixture();
        var seen = new ConcurrentQueue<RunContext?>();
        RunContext? atCreation = null;
        using SupervisedChatClient client = f.Client(new FakeChatClient
        {
            Stream = _ =>
            {
                atCreation = RunContext.Current;
                return StreamBehaviours.RecordsContext(3, seen);
            },
        });
        var inConsumer = new List<RunContext?>();

        await ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), _ => inConsumer.Add(RunContext.Current)).Guard();

        RunEndedEventArgs end = f.Ended.Should().ContainSingle().Subject;
        seen.Should().HaveCount(7, "before and after the await of each of 3 moves, and in the disposal");
        seen.Append(atCreation).Should().AllSatisfy(c =>
        {
            c.Should().NotBeNull();
            c!.SessionId.Should().Be(Session);
            c.RunId.Should().Be(end.RunId);
            c.FencingToken.Should().Be(end.FencingToken);
            c.AbortToken.CanBeCanceled.Should().BeTrue();
        });
        inConsumer.Should().HaveCount(3).And.AllSatisfy(c => c.Should().BeNull("the context never flows back to the consumer"));
        RunContext.Current.Should().BeNull();
    }

    [Fact]
    public async Task GetStreamingResponseAsync_RunAborted_ContextsAbortTokenIsTheRunsAndIsCancelled()
    {
        using var f = new RegistryFixture();
        var seen = new ConcurrentQueue<RunContext?>();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => StreamBehaviours.RecordsContext(5, seen) });
        await using IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        seen.TryPeek(out RunContext? context).Should().BeTrue();
        context!.AbortToken.IsCancellationRequested.Should().BeFalse();

        f.Registry.TryAbort(Session).Should().BeTrue();

        context.AbortToken.IsCancellationRequested.Should().BeTrue("it is the run's own abort token");
        await FluentActions.Awaiting(() => e.MoveNextAsync().AsTask().Guard()).Should().ThrowAsync<OperationCanceledException>();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Aborted);
    }
}
