namespace RunSupervisor.Agents.Tests.Agents;

/// <summary>A non-streaming turn is one supervised run: its ends are those of <c>RunAsync</c>. On fake time.</summary>
public sealed class SupervisedAgentRunTests : IDisposable
{
    private readonly AgentFixture _f = new();
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose()
    {
        _f.Dispose();
        _unobserved.Dispose();
    }

    [Fact]
    public async Task RunAsync_TurnCompletes_ReturnsTheResponseAndTheRunEndsCompleted()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();

        AgentResponse response = await agent.RunAsync("hi", session).Guard();

        response.Text.Should().Be("done");
        RunEndedEventArgs end = _f.Ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.Completed);
        end.SessionId.Should().Be(SupervisedAgent.GetSessionId(session));
        _f.Registry.IsActive(end.SessionId).Should().BeFalse();
    }

    [Fact]
    public async Task RunAsync_DuringTheTurn_RunContextCarriesTheRunsFencingTokenAndAbortToken()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();

        await agent.RunAsync("hi", session).Guard();

        RunEndedEventArgs end = _f.Ended.Should().ContainSingle().Subject;
        RunContext context = inner.SeenContext!;
        context.Should().NotBeNull();
        context.SessionId.Should().Be(end.SessionId);
        context.RunId.Should().Be(end.RunId);
        context.FencingToken.Should().Be(end.FencingToken);
        context.AbortToken.Should().Be(await inner.Called, "tools get the very token the turn was given");
        RunContext.Current.Should().BeNull("the context never flows back to the caller");
    }

    [Fact]
    public async Task RunAsync_TurnHonoursTheAbortAtTheDeadline_ThrowsRunTimedOutException()
    {
        SupervisedAgent agent = _f.Agent(new FakeAgent { Turn = AgentBehaviours.HonoursToken });
        AgentSession session = await agent.CreateSessionAsync();

        Task<AgentResponse> turn = agent.RunAsync("hi", session);
        _f.Time.Advance(AgentFixture.Timeout);

        (await FluentActions.Awaiting(() => turn.Guard()).Should().ThrowAsync<RunTimedOutException>()).Which.Reason.Should().Be(RunEndReason.TimedOut);
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task RunAsync_ToolHangsIgnoringItsToken_ForceEvictedAtDeadlinePlusGraceAndTheSessionTakesTheNextTurn()
    {
        var release = new TaskCompletionSource();
        int turns = 0;
        var inner = new FakeAgent
        {
            Turn = ct => Interlocked.Increment(ref turns) == 1 ? AgentBehaviours.IgnoresToken(release.Task) : Task.FromResult(AgentBehaviours.Reply("next")),
        };
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();

        Task<AgentResponse> hung = agent.RunAsync("hi", session);
        await inner.Called.Guard();
        _f.Time.Advance(AgentFixture.Timeout);
        _f.Time.Advance(AgentFixture.Grace - Tick);
        hung.IsCompleted.Should().BeFalse("the grace period has not passed");
        _f.Time.Advance(Tick);

        await FluentActions.Awaiting(() => hung.Guard()).Should().ThrowAsync<RunEvictedException>();
        _f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.ForceEvicted);
        (await agent.RunAsync("again", session).Guard()).Text.Should().Be("next");
        _f.Registry.AbandonedCount.Should().Be(1, "the hung tool is quarantined until it settles");
        release.SetResult();
    }

    [Fact]
    public async Task RunAsync_InnerAgentThrows_TheSameExceptionAndTheRunEndsFaulted()
    {
        SupervisedAgent agent = _f.Agent(new FakeAgent { Turn = _ => Task.FromException<AgentResponse>(new InvalidDataException("bad tool")) });

        await FluentActions.Awaiting(() => agent.RunAsync("hi", agent.CreateSessionAsync().AsTask().Result).Guard())
            .Should().ThrowAsync<InvalidDataException>().WithMessage("bad tool");
        _f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task RunAsync_CallerCancels_OperationCanceledExceptionCarryingTheCallersToken()
    {
        SupervisedAgent agent = _f.Agent(new FakeAgent { Turn = AgentBehaviours.HonoursToken });
        AgentSession session = await agent.CreateSessionAsync();
        using var cts = new CancellationTokenSource();

        Task<AgentResponse> turn = agent.RunAsync("hi", session, cancellationToken: cts.Token);
        await cts.CancelAsync();

        (await FluentActions.Awaiting(() => turn.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Aborted);
    }
}
