using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>
/// The outcome table's rows for <see cref="SupervisedChatClient.GetResponseAsync"/> that its streaming twin has too
/// (late result, explicit abort, the registry's disposal, a caller's cancellation the provider ignores), so the two
/// columns are checked alike. On fake time.
/// </summary>
public sealed class SupervisedChatClientGetResponseOutcomeTests : IDisposable
{
    private const string Session = "conversation-1";
    private readonly UnobservedTaskExceptionMonitor _unobserved = new();

    public void Dispose() => _unobserved.Dispose();

    [Fact]
    public async Task GetResponseAsync_InnerIgnoresDeadlineButReturnsWithinGrace_ReturnsResponseAndRunEndsTimedOut()
    {
        using var f = new RegistryFixture();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => Behaviours.IgnoresToken(gate.Task) };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Time.Advance(RegistryFixture.Timeout);
        gate.SetResult();

        (await call.Guard()).Text.Should().Be("late");
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.TimedOut);
    }

    [Fact]
    public async Task GetResponseAsync_TryAbortAndInnerHonoursToken_ThrowsOperationCanceledAndRunEndsAborted()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient { Response = Behaviours.HonoursToken };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Registry.TryAbort(Session).Should().BeTrue();

        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task GetResponseAsync_RegistryDisposedWhileInnerRuns_ThrowsOperationCanceled()
    {
        var f = new RegistryFixture();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => Behaviours.IgnoresToken(gate.Task) };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session));
        await inner.Called.Guard();
        f.Dispose();

        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.Aborted);
        gate.SetResult();
    }

    [Fact]
    public async Task GetResponseAsync_CallerCancelsAndInnerIgnoresIt_ThrowsCallersCancellationAtGraceAndRunIsForceEvicted()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new FakeChatClient { Response = _ => Behaviours.IgnoresToken(gate.Task) };
        using SupervisedChatClient client = f.Client(inner);

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation(Session), cts.Token);
        await inner.Called.Guard();
        await cts.CancelAsync();
        f.Time.Advance(RegistryFixture.Grace - Tick);
        call.IsCompleted.Should().BeFalse();
        f.Time.Advance(Tick);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        f.Ended.Should().ContainSingle().Which.Reason.Should().Be(RunEndReason.ForceEvicted);
        gate.SetResult();
    }
}
