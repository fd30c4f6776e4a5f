namespace RunSupervisor.Agents.Tests.Streaming;

/// <summary>
/// A streaming turn is one supervised run over the whole enumeration: the idle timeout is a stream idle timeout, the
/// consumer walks away from a hung <c>MoveNextAsync</c> at deadline + grace, late updates are never shown, disposal
/// ends the run and the caller's cancellation wins. On fake time.
/// </summary>
public sealed class SupervisedAgentStreamingTests : IDisposable
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(2);

    private readonly AgentFixture _f = new();
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose()
    {
        _f.Dispose();
        _unobserved.Dispose();
    }

    [Fact]
    public async Task RunStreamingAsync_StreamEndsOnItsOwn_DeliversEveryUpdateAndTheRunEndsCompleted()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();

        List<string> texts = await ConsumeAsync(agent.RunStreamingAsync("hi", session)).Guard();

        texts.Should().Equal("u0", "u1", "u2");
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Completed);
        inner.SeenContext.Should().NotBeNull("the inner stream runs as the run's code");
        inner.SeenContext!.SessionId.Should().Be(SupervisedAgent.GetSessionId(session));
        inner.SeenContext.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task RunStreamingAsync_ConsumerSuppressesContextFlow_TheInnerStreamStillRunsAsTheRun()
    {
        var inner = new FakeAgent();
        SupervisedAgent agent = _f.Agent(inner);
        AgentSession session = await agent.CreateSessionAsync();
        IAsyncEnumerator<AgentResponseUpdate> updates = agent.RunStreamingAsync("hi", session).GetAsyncEnumerator();
        ValueTask<bool> first;
        using (ExecutionContext.SuppressFlow())
        {
            first = updates.MoveNextAsync();
        }

        (await first.AsTask().Guard()).Should().BeTrue();
        int count = 1;
        while (await updates.MoveNextAsync().AsTask().Guard())
        {
            count++;
        }

        await updates.DisposeAsync();
        count.Should().Be(3);
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Completed);
        inner.SeenContext.Should().NotBeNull("the inner calls run as the run's code even without the consumer's context");
        inner.SeenContext!.SessionId.Should().Be(SupervisedAgent.GetSessionId(session));
    }

    [Fact]
    public async Task RunStreamingAsync_StreamStopsYielding_EndsStalledAtTheIdleTimeoutWellBeforeTheDeadline()
    {
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(
            new FakeAgent { Stream = ct => AgentBehaviours.UpdatesThenStallsHonouringToken(2, stalled, ct) },
            o => o.RunStartOptions = new RunStartOptions { IdleTimeout = Idle });
        AgentSession session = await agent.CreateSessionAsync();
        var seen = new List<string>();

        Task consume = ConsumeAsync(agent.RunStreamingAsync("hi", session), n => seen.Add($"u{n - 1}"));
        await stalled.Task.Guard();
        _f.Time.Advance(Idle);

        RunTimedOutException error = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<RunTimedOutException>()).Which;
        error.Reason.Should().Be(RunEndReason.Stalled);
        error.Timeout.Should().Be(Idle);
        seen.Should().Equal("u0", "u1");
        RunEndedEventArgs end = await _f.FirstEnd.Guard();
        end.Reason.Should().Be(RunEndReason.Stalled);
        end.Duration.Should().Be(Idle, "the idle timeout, not the 10 s deadline, ended it");
    }

    [Fact]
    public async Task RunStreamingAsync_UpdatesKeepComingWithinTheIdleTimeout_EachIsProgressSoTheStreamCompletes()
    {
        var next = Enumerable.Range(0, 4).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var asked = Enumerable.Range(0, 4).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        SupervisedAgent agent = _f.Agent(
            new FakeAgent { Stream = ct => AgentBehaviours.Gated(4, i => { asked[i].TrySetResult(); return next[i].Task; }, ct) },
            o => o.RunStartOptions = new RunStartOptions { IdleTimeout = Idle });
        AgentSession session = await agent.CreateSessionAsync();

        Task<List<string>> consume = ConsumeAsync(agent.RunStreamingAsync("hi", session));
        for (int i = 0; i < 4; i++)
        {
            await asked[i].Task.Guard();
            _f.Time.Advance(Idle - TimeSpan.FromMilliseconds(500));
            next[i].SetResult();
        }

        // 4 × 1.5 s: three idle timeouts' worth of time, but never 2 s without an update.
        (await consume.Guard()).Should().Equal("u0", "u1", "u2", "u3");
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task RunStreamingAsync_MoveNextHangsIgnoringItsToken_TheConsumerWalksAwayAtDeadlinePlusGrace()
    {
        var hanging = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(new FakeAgent { Stream = _ => AgentBehaviours.OneUpdateThenHangsIgnoringToken(hanging, release.Task) });
        AgentSession session = await agent.CreateSessionAsync();
        var seen = new List<string>();

        Task consume = ConsumeAsync(agent.RunStreamingAsync("hi", session), n => seen.Add($"update {n}"));
        await hanging.Task.Guard();
        _f.Time.Advance(AgentFixture.Timeout);
        _f.Time.Advance(AgentFixture.Grace - Tick);
        await Task.Delay(50);
        consume.IsCompleted.Should().BeFalse("the grace period has not passed");
        _f.Time.Advance(Tick);

        await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<RunEvictedException>();
        seen.Should().Equal("update 1");
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.ForceEvicted);
        _f.Registry.IsActive(SupervisedAgent.GetSessionId(session)).Should().BeFalse("the session takes its next turn");
        release.SetResult();
    }

    [Fact]
    public async Task RunStreamingAsync_UpdateArrivesAfterTheDeadlineAbort_IsNeverYieldedAndTheTurnTimesOut()
    {
        var hanging = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(new FakeAgent { Stream = _ => AgentBehaviours.OneUpdateThenHangsIgnoringToken(hanging, release.Task) });
        AgentSession session = await agent.CreateSessionAsync();
        var seen = new List<string>();

        Task consume = ConsumeAsync(agent.RunStreamingAsync("hi", session), n => seen.Add($"update {n}"));
        await hanging.Task.Guard();
        _f.Time.Advance(AgentFixture.Timeout);

        // Within the grace period the inner stream, which ignored the abort, hands over one more update (u99).
        release.SetResult();

        (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<RunTimedOutException>()).Which.Reason.Should().Be(RunEndReason.TimedOut);
        seen.Should().Equal("update 1");
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task RunStreamingAsync_ConsumerDisposesEarly_TheRunEndsAndTheSessionIsFree()
    {
        var asked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(new FakeAgent { Stream = ct => AgentBehaviours.Gated(3, i => { if (i == 1) { asked.TrySetResult(); } return i == 0 ? Task.CompletedTask : Task.Delay(Timeout.Infinite, ct); }, ct) });
        AgentSession session = await agent.CreateSessionAsync();
        string id = SupervisedAgent.GetSessionId(session);

        await foreach (AgentResponseUpdate update in agent.RunStreamingAsync("hi", session))
        {
            update.Text.Should().Be("u0");
            _f.Registry.IsActive(id).Should().BeTrue();
            break;
        }

        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Completed, "stopping early is the consumer's choice, not a failure");
        _f.Registry.IsActive(id).Should().BeFalse();
    }

    [Fact]
    public async Task RunStreamingAsync_CallerCancels_OperationCanceledExceptionCarryingTheCallersTokenAndNoUpdateAfter()
    {
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(new FakeAgent { Stream = ct => AgentBehaviours.UpdatesThenStallsHonouringToken(1, stalled, ct) });
        AgentSession session = await agent.CreateSessionAsync();
        using var cts = new CancellationTokenSource();
        var seen = new List<int>();

        Task consume = ConsumeAsync(agent.RunStreamingAsync("hi", session, cancellationToken: cts.Token), seen.Add);
        await stalled.Task.Guard();
        await cts.CancelAsync();

        (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        seen.Should().Equal(1);
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task RunStreamingAsync_CallerCancelsAndTheStreamIgnoresIt_StillTheCallersCancellationOnceTheRunEnded()
    {
        var hanging = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SupervisedAgent agent = _f.Agent(new FakeAgent { Stream = _ => AgentBehaviours.OneUpdateThenHangsIgnoringToken(hanging, release.Task) });
        AgentSession session = await agent.CreateSessionAsync();
        using var cts = new CancellationTokenSource();

        Task consume = ConsumeAsync(agent.RunStreamingAsync("hi", session), cancellationToken: cts.Token);
        await hanging.Task.Guard();
        await cts.CancelAsync();
        _f.Time.Advance(AgentFixture.Grace);

        (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        (await _f.FirstEnd.Guard()).Reason.Should().Be(RunEndReason.ForceEvicted);
        release.SetResult();
    }

    [Fact]
    public async Task RunStreamingAsync_WaitOnABusySession_StreamsOnceTheSessionIsFree()
    {
        SupervisedAgent agent = _f.Agent(new FakeAgent(), o => o.WhenBusy = SessionBusyBehavior.Wait);
        AgentSession session = await agent.CreateSessionAsync();
        RunHandle current = _f.Registry.Start(SupervisedAgent.GetSessionId(session));

        Task<List<string>> consume = ConsumeAsync(agent.RunStreamingAsync("hi", session));
        await Task.Delay(50);
        consume.IsCompleted.Should().BeFalse();
        current.Dispose();

        (await consume.Guard()).Should().Equal("u0", "u1", "u2");
    }
}
