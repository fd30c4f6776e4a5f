namespace RunSupervisor.Agents.Tests.Agents;

/// <summary>Busy sessions (Reject, Supersede, Wait) and background turns that yield to a user's turn. On fake time.</summary>
public sealed class SupervisedAgentAdmissionTests : IDisposable
{
    private readonly AgentFixture _f = new();
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose()
    {
        _f.Dispose();
        _unobserved.Dispose();
    }

    [Fact]
    public async Task RunAsync_RejectOnABusySession_ThrowsSessionBusyExceptionAndTheInnerAgentIsNotCalled()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();
        using RunHandle current = _f.Registry.Start(SupervisedAgent.GetSessionId(session));

        await FluentActions.Awaiting(() => agent.RunAsync("hi", session).Guard()).Should().ThrowAsync<SessionBusyException>();
        await FluentActions.Awaiting(() => ConsumeAsync(agent.RunStreamingAsync("hi", session)).Guard()).Should().ThrowAsync<SessionBusyException>();
        inner.Calls.Should().Be(0);
        current.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task RunAsync_SupersedeOnABusySession_EndsTheOldTurnSupersededAndRuns()
    {
        SupervisedAgent agent = _f.Agent(new FakeAgent(), o => o.WhenBusy = SessionBusyBehavior.Supersede);
        AgentSession session = await agent.CreateSessionAsync();
        RunHandle current = _f.Registry.Start(SupervisedAgent.GetSessionId(session));

        (await agent.RunAsync("hi", session).Guard()).Text.Should().Be("done");

        (await current.Completion.Guard()).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public async Task RunAsync_WaitOnABusySession_TurnsRunOneAfterTheOtherInOrder()
    {
        var gates = new[] { new TaskCompletionSource<AgentResponse>(), new TaskCompletionSource<AgentResponse>() };
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new List<string>();
        int index = -1;
        var inner = new FakeAgent
        {
            Turn = _ =>
            {
                int i = Interlocked.Increment(ref index);
                lock (order)
                {
                    order.Add($"start {i}");
                }

                // Signalled once the start is recorded: the agent's own call signal may resume the test before it is.
                firstStarted.TrySetResult();
                return gates[i].Task;
            },
        };
        SupervisedAgent agent = _f.Agent(inner, o => o.WhenBusy = SessionBusyBehavior.Wait);
        AgentSession session = await agent.CreateSessionAsync();

        Task<AgentResponse> first = agent.RunAsync("one", session);
        await firstStarted.Task.Guard();
        Task<AgentResponse> second = agent.RunAsync("two", session);
        _f.Registry.GetQueuedCount(SupervisedAgent.GetSessionId(session)).Should().Be(1);
        inner.Calls.Should().Be(1, "the second turn waits for the first");

        lock (order)
        {
            order.Add("end 0");
        }

        gates[0].SetResult(AgentBehaviours.Reply("first"));
        (await first.Guard()).Text.Should().Be("first");
        gates[1].SetResult(AgentBehaviours.Reply("second"));
        (await second.Guard()).Text.Should().Be("second");

        order.Should().Equal("start 0", "end 0", "start 1");
        _f.Ended.Select(e => e.RunId).Should().BeInAscendingOrder();
    }

    [Fact]
    public async Task RunAsync_WaitLongerThanTheQueueTimeout_ThrowsRunQueueTimeoutExceptionAndNeverRuns()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner, o =>
        {
            o.WhenBusy = SessionBusyBehavior.Wait;
            o.RunStartOptions = new RunStartOptions { QueueTimeout = TimeSpan.FromSeconds(3) };
        });
        AgentSession session = await agent.CreateSessionAsync();
        using RunHandle current = _f.Registry.Start(SupervisedAgent.GetSessionId(session));

        Task<AgentResponse> waiting = agent.RunAsync("hi", session);
        _f.Time.Advance(TimeSpan.FromSeconds(3));

        (await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<RunQueueTimeoutException>()).Which.Waited.Should().Be(TimeSpan.FromSeconds(3));
        inner.Calls.Should().Be(0);
    }

    [Fact]
    public async Task RunAsync_BackgroundTurnMarkedInAdditionalProperties_IsPreemptedByTheUsersTurn()
    {
        var inner = new FakeAgent { Turn = AgentBehaviours.HonoursToken };
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();

        Task<AgentResponse> heartbeat = agent.RunAsync("heartbeat", session, Background());
        await inner.Called.Guard();
        SupervisedAgent userAgent = _f.Agent(new FakeAgent());
        AgentResponse reply = await userAgent.RunAsync("user", session).Guard();

        reply.Text.Should().Be("done");
        await FluentActions.Awaiting(() => heartbeat.Guard()).Should().ThrowAsync<OperationCanceledException>().WithMessage("*preempted*");
        RunEndedEventArgs preempted = _f.Ended.First();
        preempted.Reason.Should().Be(RunEndReason.Superseded);
        preempted.Detail.Should().StartWith("preempted by run");
    }

    [Fact]
    public async Task RunAsync_BackgroundTurnWithSupersedeOnTheUsersRunningTurn_IsRefusedAndTheUsersTurnGoesOn()
    {
        // Supersede lets a user's new message replace their old one; a heartbeat with the same options must not.
        var inner = new FakeAgent { Turn = AgentBehaviours.HonoursToken };
        SupervisedAgent agent = _f.Agent(inner, o => o.WhenBusy = SessionBusyBehavior.Supersede);
        AgentSession session = await agent.CreateSessionAsync();
        Task<AgentResponse> user = agent.RunAsync("user question", session);
        await inner.Called.Guard();

        await FluentActions.Awaiting(() => agent.RunAsync("heartbeat", session, Background()).Guard()).Should().ThrowAsync<SessionBusyException>();
        await FluentActions.Awaiting(() => ConsumeAsync(agent.RunStreamingAsync("heartbeat", session, Background())).Guard()).Should().ThrowAsync<SessionBusyException>();

        user.IsCompleted.Should().BeFalse("a background turn never ends a user's turn");
        _f.Ended.Should().BeEmpty();
        inner.Calls.Should().Be(1);
    }

    [Fact]
    public async Task RunStreamingAsync_BackgroundSelector_DecidesWhichTurnsYield()
    {
        var hanging = new TaskCompletionSource();
        SupervisedAgent agent = _f.Agent(
            new FakeAgent { Stream = ct => AgentBehaviours.UpdatesThenStallsHonouringToken(1, hanging, ct) },
            o => o.BackgroundSelector = (_, options) => options?.AdditionalProperties?.ContainsKey("cron") == true);
        AgentSession session = await agent.CreateSessionAsync();
        var cron = new AgentRunOptions { AdditionalProperties = new() { ["cron"] = "nightly" } };

        Task<List<string>> background = ConsumeAsync(agent.RunStreamingAsync("tick", session, cron));
        await hanging.Task.Guard();
        SupervisedAgent user = _f.Agent(new FakeAgent());
        (await user.RunAsync("user", session).Guard()).Text.Should().Be("done");

        await FluentActions.Awaiting(() => background.Guard()).Should().ThrowAsync<OperationCanceledException>();
        _f.Ended.First().Reason.Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public async Task RunAsync_BackgroundSelectorSet_ThePropertyNoLongerMakesATurnBackground()
    {
        var inner = new FakeAgent { Turn = AgentBehaviours.HonoursToken };
        SupervisedAgent agent = _f.Agent(inner, o => o.BackgroundSelector = (_, _) => false);
        AgentSession session = await agent.CreateSessionAsync();

        Task<AgentResponse> marked = agent.RunAsync("tick", session, Background());
        await inner.Called.Guard();

        await FluentActions.Awaiting(() => _f.Agent(new FakeAgent()).RunAsync("user", session).Guard())
            .Should().ThrowAsync<SessionBusyException>("the selector, not the property, decided the first turn is a foreground turn");
        marked.IsCompleted.Should().BeFalse();
    }
}
