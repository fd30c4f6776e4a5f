using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary><see cref="SupervisedChatClient.GetResponseAsync"/> with each inner behaviour, on fake time.</summary>
public sealed class SupervisedChatClientGetResponseTests
{
    private const string Session = "conversation-1";

    [Fact]
    public async Task GetResponseAsync_InnerCompletes_ReturnsResponseAndRunEndsCompleted()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient());

        ChatResponse response = await client.GetResponseAsync(Prompt, Conversation(Session)).Guard();

        response.Text.Should().Be("done");
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Should().Match<RunEndedEventArgs>(e => e.SessionId == Session && e.Reason == RunEndReason.Completed);
    }

    [Fact]
    public async Task GetResponseAsync_WhileInnerRuns_SessionIsActiveAndInnerHoldsRunAbortToken()
    {
        using var f = new RegistryFixture();
        var reply = new TaskCompletionSource<ChatResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => reply.Task };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        CancellationToken token = await inner.Called.Guard();

        f.Registry.IsActive(Session).Should().BeTrue("the call is a supervised run of its conversation");
        token.CanBeCanceled.Should().BeTrue();
        f.Time.Advance(RegistryFixture.Timeout - Tick);
        token.IsCancellationRequested.Should().BeFalse();
        f.Time.Advance(Tick);
        token.IsCancellationRequested.Should().BeTrue("the inner call holds the run's abort token, cancelled at the deadline");

        reply.SetResult(Behaviours.Reply("within grace"));
        (await call.Guard()).Text.Should().Be("within grace", "a reply that arrives within the grace period is still returned");
        f.Ended.Single().Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task GetResponseAsync_InnerFaults_PropagatesExceptionAndRunEndsFaulted()
    {
        using var f = new RegistryFixture();
        var error = new InvalidOperationException("provider exploded");
        using SupervisedChatClient client = f.Client(new FakeChatClient { Response = _ => Task.FromException<ChatResponse>(error) });

        Func<Task> act = () => client.GetResponseAsync(Prompt, Conversation(Session)).Guard();

        (await act.Should().ThrowExactlyAsync<InvalidOperationException>()).Which.Should().BeSameAs(error);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Single().Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task GetResponseAsync_InnerHonoursToken_ThrowsRunTimedOutExceptionAtDeadline()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient { Response = Behaviours.HonoursToken };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Time.Advance(RegistryFixture.Timeout - Tick);
        call.IsCompleted.Should().BeFalse();
        f.Time.Advance(Tick);

        RunTimedOutException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>()).Which;
        ex.SessionId.Should().Be(Session);
        ex.Timeout.Should().Be(RegistryFixture.Timeout);
        ex.InnerException.Should().BeAssignableTo<OperationCanceledException>();
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Single().Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task GetResponseAsync_InnerIgnoresToken_ThrowsRunEvictedExceptionAtDeadlinePlusGraceAndLedgersIt()
    {
        using var f = new RegistryFixture();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => Behaviours.IgnoresToken(gate.Task) };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace - Tick);
        call.IsCompleted.Should().BeFalse("the grace period has not elapsed");
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Time.Advance(Tick);

        RunEvictedException ex = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunEvictedException>()).Which;
        ex.Age.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
        f.Registry.IsActive(Session).Should().BeFalse("the session is free although the inner call never settled");
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(ex.RunId);

        gate.SetResult();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.GetAbandonedRuns().Should().BeEmpty("the abandoned call settled");
    }

    [Fact]
    public async Task GetResponseAsync_CallerCancels_AbortsRunAndThrowsOperationCanceled()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var inner = new FakeChatClient { Response = Behaviours.HonoursToken };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session), cts.Token);
        CancellationToken token = await inner.Called.Guard();
        await cts.CancelAsync();

        token.IsCancellationRequested.Should().BeTrue("the caller's token is linked to the run's abort token");
        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Single().Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task GetResponseAsync_SessionBusy_ThrowsSessionBusyExceptionAndLeavesRunAlone()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);

        Func<Task> act = () => client.GetResponseAsync(Prompt, Conversation(Session)).Guard();

        (await act.Should().ThrowExactlyAsync<SessionBusyException>()).Which.RunId.Should().Be(current.RunId);
        inner.Calls.Should().Be(0);
        current.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task GetResponseAsync_SessionBusyWithSupersede_SupersedesCurrentRun()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);
        using SupervisedChatClient client = f.Client(new FakeChatClient(), o => o.BusyBehavior = SessionBusyBehavior.Supersede);

        ChatResponse response = await client.GetResponseAsync(Prompt, Conversation(Session)).Guard();

        response.Text.Should().Be("done");
        (await current.Completion.Guard()).Should().Be(RunEndReason.Superseded);
        current.AbortToken.IsCancellationRequested.Should().BeTrue();
    }

    [Fact]
    public async Task GetResponseAsync_RunStartOptions_OverrideTimeout()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient { Response = Behaviours.HonoursToken };
        using SupervisedChatClient client = f.Client(inner, o => o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(2) });

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Time.Advance(TimeSpan.FromSeconds(2));

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>())
            .Which.Timeout.Should().Be(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task GetResponseAsync_NoConversationId_PassesThroughUnsupervised()
    {
        using var f = new RegistryFixture();
        var reply = new TaskCompletionSource<ChatResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => reply.Task };
        using SupervisedChatClient client = f.Client(inner);
        using var cts = new CancellationTokenSource();

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, new ChatOptions(), cts.Token);
        CancellationToken token = await inner.Called.Guard();

        token.Should().Be(cts.Token, "an unsupervised call gets the caller's own token");
        f.Registry.ActiveCount.Should().Be(0);
        reply.SetResult(Behaviours.Reply("free"));
        (await call.Guard()).Text.Should().Be("free");
        f.Ended.Should().BeEmpty();
    }

    [Fact]
    public async Task GetResponseAsync_SelectorSet_UsesSelectedSessionInsteadOfConversationId()
    {
        using var f = new RegistryFixture();
        var reply = new TaskCompletionSource<ChatResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => reply.Task };
        IEnumerable<ChatMessage>? seenMessages = null;
        using SupervisedChatClient client = f.Client(inner, o => o.SessionIdSelector = (messages, options) =>
        {
            seenMessages = messages;
            return "user:" + options?.AdditionalProperties?["user"];
        });

        var chatOptions = new ChatOptions { ConversationId = Session, AdditionalProperties = new() { ["user"] = "ada" } };
        Task<ChatResponse> call = client.GetResponseAsync(Prompt, chatOptions);
        await inner.Called.Guard();

        f.Registry.IsActive("user:ada").Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeFalse();
        seenMessages.Should().BeSameAs(Prompt);
        reply.SetResult(Behaviours.Reply("ok"));
        await call.Guard();
    }

    [Fact]
    public async Task GetResponseAsync_SelectorReturnsNull_PassesThroughEvenWithConversationId()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner, o => o.SessionIdSelector = static (_, _) => null);

        await client.GetResponseAsync(Prompt, Conversation(Session)).Guard();

        inner.Calls.Should().Be(1);
        f.Ended.Should().BeEmpty("no run was started");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void GetResponseAsync_InvalidConversationId_ThrowsArgumentExceptionNamingTheSource(string conversationId)
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);

        Action act = () => client.GetResponseAsync(Prompt, Conversation(conversationId));

        act.Should().Throw<ArgumentException>().WithMessage("*ChatOptions.ConversationId*").Which.ParamName.Should().Be("options");
        inner.Calls.Should().Be(0);
    }

    [Fact]
    public void GetResponseAsync_OverlongSessionFromSelector_ThrowsArgumentExceptionNamingTheSelector()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient(), o => o.SessionIdSelector = static (_, _) => new string('x', ActiveRunRegistry.MaxSessionIdLength + 1));

        Action act = () => client.GetResponseAsync(Prompt);

        act.Should().Throw<ArgumentException>().WithMessage("*SessionIdSelector*");
    }

    [Fact]
    public void GetResponseAsync_NullMessages_ThrowsArgumentNullException()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient());

        Action act = () => client.GetResponseAsync(null!);

        act.Should().Throw<ArgumentNullException>().WithParameterName("messages");
    }
}
