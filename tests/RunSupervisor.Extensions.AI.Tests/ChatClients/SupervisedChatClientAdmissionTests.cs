using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>
/// The chat middleware takes the core's admission and liveness options: <see cref="SessionBusyBehavior.Wait"/>, a
/// stream idle timeout fed by updates, and per-run options validated when the client is built. On fake time.
/// </summary>
public sealed class SupervisedChatClientAdmissionTests
{
    private const string Session = "conversation-1";

    [Fact]
    public void Constructor_InvalidRunStartOptions_FailsWhenTheClientIsBuiltNotAtTheFirstCall()
    {
        using var f = new RegistryFixture();

        FluentActions.Invoking(() => f.Client(new FakeChatClient(), o => o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(-1) }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RunStartOptions.Timeout*");
        FluentActions.Invoking(() => f.Client(new FakeChatClient(), o => o.RunStartOptions = new RunStartOptions { Lane = "nightly" }))
            .Should().Throw<ArgumentException>().WithMessage("*'nightly'*");
    }

    [Fact]
    public async Task GetResponseAsync_WaitOnABusySession_RunsOnceTheSessionIsFree()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner, o => o.BusyBehavior = SessionBusyBehavior.Wait);
        RunHandle current = f.Registry.Start(Session);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));

        call.IsCompleted.Should().BeFalse();
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        current.Dispose();
        (await call.Guard()).Text.Should().Be("done");
        inner.Calls.Should().Be(1);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_WaitOnABusySession_StreamsOnceTheSessionIsFree()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient(), o => o.BusyBehavior = SessionBusyBehavior.Wait);
        RunHandle current = f.Registry.Start(Session);

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        // The first MoveNextAsync runs on this thread up to its wait for admission.
        f.Registry.GetQueuedCount(Session).Should().Be(1);
        consume.IsCompleted.Should().BeFalse();
        current.Dispose();
        (await consume.Guard()).Should().Equal("u0", "u1", "u2");
    }

    [Fact]
    public async Task GetStreamingResponseAsync_StreamStopsYielding_EndsStalledWithRunTimedOutException()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TimeSpan idle = TimeSpan.FromSeconds(2);
        using SupervisedChatClient client = f.Client(
            new FakeChatClient { Stream = ct => Behaviours.UpdatesThenStallsHonouringToken(2, stalled, ct) },
            o => o.RunStartOptions = new RunStartOptions { IdleTimeout = idle });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        await stalled.Task.Guard();
        f.Time.Advance(idle);

        RunTimedOutException error = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<RunTimedOutException>()).Which;
        error.Reason.Should().Be(RunEndReason.Stalled);
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Stalled);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_UpdatesKeepComing_EachIsProgressSoTheStreamDoesNotStall()
    {
        using var f = new RegistryFixture();
        TimeSpan idle = TimeSpan.FromSeconds(2);
        using SupervisedChatClient client = f.Client(new FakeChatClient(), o => o.RunStartOptions = new RunStartOptions { IdleTimeout = idle });
        var received = 0;

        await using IAsyncEnumerator<ChatResponseUpdate> stream = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        while (await stream.MoveNextAsync().AsTask().Guard())
        {
            received++;
            f.Time.Advance(idle - Tick);
        }

        received.Should().Be(3, "each update restarted the idle clock, although more than the idle timeout passed in all");
        (await f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Completed);
    }
}
