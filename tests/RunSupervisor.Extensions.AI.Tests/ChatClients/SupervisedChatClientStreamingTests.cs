using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>
/// <see cref="SupervisedChatClient.GetStreamingResponseAsync"/> with each inner stream behaviour, on fake time: the
/// run spans the enumeration, updates never renew the deadline, and the consumer never hangs.
/// </summary>
public sealed class SupervisedChatClientStreamingTests
{
    private const string Session = "conversation-1";

    [Fact]
    public async Task GetStreamingResponseAsync_InnerCompletes_YieldsEveryUpdateAndRunEndsCompleted()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => Behaviours.Updates(3, ct) });

        List<string> texts = await ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session))).Guard();

        texts.Should().Equal("u0", "u1", "u2");
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_RunSpansEnumeration_StartsAtFirstMoveNextAndEndsWithStream()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient { Stream = ct => Behaviours.Updates(2, ct) };
        using SupervisedChatClient client = f.Client(inner);

        IAsyncEnumerable<ChatResponseUpdate> stream = client.GetStreamingResponseAsync(Prompt, Conversation(Session));
        f.Registry.IsActive(Session).Should().BeFalse("nothing starts before the stream is enumerated");
        inner.Calls.Should().Be(0);

        await using IAsyncEnumerator<ChatResponseUpdate> e = stream.GetAsyncEnumerator();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeTrue("the run spans the enumeration");
        CancellationToken token = await inner.Called.Guard();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeTrue();
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeFalse();

        f.Registry.IsActive(Session).Should().BeFalse("the run ends with the stream");
        token.IsCancellationRequested.Should().BeFalse("a normal end does not cancel the abort token");
        (await e.MoveNextAsync().AsTask().Guard()).Should().BeFalse("a finished stream stays finished");
    }

    [Fact]
    public async Task GetStreamingResponseAsync_InnerFaultsMidStream_PropagatesExceptionAndRunEndsFaulted()
    {
        using var f = new RegistryFixture();
        var error = new InvalidOperationException("stream broke");
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenFaults(2, error) });
        var received = new List<int>();

        Func<Task> act = () => ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), received.Add).Guard();

        (await act.Should().ThrowExactlyAsync<InvalidOperationException>()).Which.Should().BeSameAs(error);
        received.Should().Equal(1, 2);
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Single().Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_StallHonouringToken_ThrowsRunTimedOutExceptionAtDeadline()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => Behaviours.UpdatesThenStallsHonouringToken(2, stalled, ct) });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        await stalled.Task.Guard();
        f.Time.Advance(RegistryFixture.Timeout - Tick);
        consume.IsCompleted.Should().BeFalse();
        f.Time.Advance(Tick);

        RunTimedOutException ex = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>()).Which;
        ex.SessionId.Should().Be(Session);
        ex.InnerException.Should().BeAssignableTo<OperationCanceledException>();
        f.Registry.IsActive(Session).Should().BeFalse();
        f.Ended.Single().Reason.Should().Be(RunEndReason.TimedOut);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_StreamsThenStallsIgnoringToken_ThrowsRunEvictedExceptionAtDeadlinePlusGrace()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(2, stalled, gate.Task, probe) });
        var received = new List<int>();

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), received.Add);
        await stalled.Task.Guard();
        f.Time.Advance(RegistryFixture.Timeout);
        f.Registry.TryGetRun(Session, out RunInfo? run).Should().BeTrue();
        run!.Status.Should().Be(RunStatus.Aborting, "the abort was sent at the deadline and ignored");
        f.Time.Advance(RegistryFixture.Grace - Tick);
        consume.IsCompleted.Should().BeFalse("the grace period has not elapsed");
        f.Time.Advance(Tick);

        RunEvictedException ex = (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowExactlyAsync<RunEvictedException>()).Which;
        ex.Age.Should().Be(RegistryFixture.Timeout + RegistryFixture.Grace);
        ex.RunId.Should().Be(run.RunId);
        received.Should().Equal(1, 2);
        f.Registry.IsActive(Session).Should().BeFalse("the consumer never hangs and the session is free");
        f.Ended.Single().Reason.Should().Be(RunEndReason.ForceEvicted);
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(run.RunId);

        // The stalled stream finally moves: its late update is dropped, it is disposed, and it leaves the ledger.
        gate.SetResult();
        await probe.Disposed.Guard();
        await f.Logs.WaitForAsync("AbandonedRunSettled").Guard();
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_StreamsForeverIgnoringToken_DeadlineBetweenUpdatesCutsItOffTimedOut()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) });
        int received = 0;

        // One second of fake time per update: the deadline (10 s) falls while the consumer holds the stream, so the
        // inner stream is disposed there and then; it never gets the chance to ignore the token.
        Func<Task> act = () => ConsumeAsync(
            client.GetStreamingResponseAsync(Prompt, Conversation(Session)),
            count =>
            {
                received = count;
                f.Time.Advance(TimeSpan.FromSeconds(1));
            }).Guard();

        RunTimedOutException ex = (await act.Should().ThrowExactlyAsync<RunTimedOutException>()).Which;
        ex.Timeout.Should().Be(RegistryFixture.Timeout, "10 updates in 10 s renewed nothing");
        received.Should().Be(10, "nothing is delivered after the abort");
        f.Registry.IsActive(Session).Should().BeFalse();
        probe.Disposed.IsCompleted.Should().BeTrue();
        f.Ended.Single().Reason.Should().Be(RunEndReason.TimedOut);
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_StreamsForeverHonouringToken_ThrowsRunTimedOutExceptionAfterDeadline()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = ct => Behaviours.Forever(honourToken: true, cancellationToken: ct) });
        int received = 0;

        Func<Task> act = () => ConsumeAsync(
            client.GetStreamingResponseAsync(Prompt, Conversation(Session)),
            count =>
            {
                received = count;
                f.Time.Advance(TimeSpan.FromSeconds(1));
            }).Guard();

        await act.Should().ThrowExactlyAsync<RunTimedOutException>();
        received.Should().Be(10, "updates do not renew the deadline: the 10th second's advance reached it");
        f.Ended.Single().Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_ConsumerBreaksEarly_StopsAndDisposesInnerAndRunEndsCompleted()
    {
        using var f = new RegistryFixture();
        var probe = new StreamProbe();
        var inner = new FakeChatClient { Stream = _ => Behaviours.Forever(honourToken: false, probe) };
        using SupervisedChatClient client = f.Client(inner);

        int count = 0;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(Prompt, Conversation(Session)))
        {
            if (++count == 3)
            {
                f.Registry.IsActive(Session).Should().BeTrue();
                break;
            }
        }

        f.Registry.IsActive(Session).Should().BeFalse("breaking out releases the run");
        probe.Disposed.IsCompleted.Should().BeTrue("the inner stream is disposed before the run is released");
        f.Ended.Single().Reason.Should().Be(RunEndReason.Completed, "the consumer chose to stop: that is not a failure");
        (await inner.Called.Guard()).IsCancellationRequested.Should().BeTrue("the inner stream is told to stop at once");
    }

    [Fact]
    public async Task GetStreamingResponseAsync_DisposedBeforeFirstMoveNext_StartsNothing()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);

        IAsyncEnumerator<ChatResponseUpdate> e = client.GetStreamingResponseAsync(Prompt, Conversation(Session)).GetAsyncEnumerator();
        await e.DisposeAsync();

        inner.Calls.Should().Be(0);
        f.Ended.Should().BeEmpty();
        (await e.MoveNextAsync()).Should().BeFalse();
    }

    [Fact]
    public async Task GetStreamingResponseAsync_SessionBusy_FirstMoveNextThrowsSessionBusyException()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);

        Func<Task> act = () => ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session))).Guard();

        await act.Should().ThrowExactlyAsync<SessionBusyException>();
        inner.Calls.Should().Be(0);
        current.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task GetStreamingResponseAsync_SupersededMidStream_ConsumerGetsOperationCanceled()
    {
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task) });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        await stalled.Task.Guard();
        using RunHandle newer = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>())
            .WithMessage("*superseded*");
        newer.IsCurrent.Should().BeTrue();
        gate.SetResult();
    }

    [Fact]
    public async Task GetStreamingResponseAsync_CallerCancels_AbortsRunAndThrowsOperationCanceled()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Stream = ct => Behaviours.UpdatesThenStallsHonouringToken(1, stalled, ct) };
        using SupervisedChatClient client = f.Client(inner);

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)), cancellationToken: cts.Token);
        await stalled.Task.Guard();
        await cts.CancelAsync();

        await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>();
        (await inner.Called.Guard()).IsCancellationRequested.Should().BeTrue("the caller's token is linked to the run's abort token");
        f.Ended.Single().Reason.Should().Be(RunEndReason.Aborted);
        f.Registry.IsActive(Session).Should().BeFalse();
    }

    [Fact]
    public async Task GetStreamingResponseAsync_NoConversationId_PassesThroughUnsupervised()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient();
        using SupervisedChatClient client = f.Client(inner);

        List<string> texts = await ConsumeAsync(client.GetStreamingResponseAsync(Prompt)).Guard();

        texts.Should().HaveCount(3);
        f.Ended.Should().BeEmpty("no run was started");
    }

    [Fact]
    public async Task GetStreamingResponseAsync_RegistryDisposedMidStream_ConsumerGetsOperationCanceled()
    {
        var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using SupervisedChatClient client = f.Client(new FakeChatClient { Stream = _ => Behaviours.UpdatesThenStallsIgnoringToken(1, stalled, gate.Task) });

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, Conversation(Session)));
        await stalled.Task.Guard();
        f.Dispose();

        await FluentActions.Awaiting(() => consume.Guard()).Should().ThrowAsync<OperationCanceledException>();
        gate.SetResult();
    }
}
