using System.Runtime.CompilerServices;
using System.Text.Json;

namespace RunSupervisor.Agents.Tests.TestSupport;

/// <summary>
/// An <see cref="AIAgent"/> whose turn each test plugs in. It records the token of every turn and the
/// <see cref="RunContext.Current"/> its turn saw, and (de)serializes its sessions through their state bag, as a real
/// agent does.
/// </summary>
internal sealed class FakeAgent : AIAgent
{
    private readonly TaskCompletionSource<CancellationToken> _called = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _calls;

    public Func<CancellationToken, Task<AgentResponse>> Turn { get; init; } = static _ => Task.FromResult(AgentBehaviours.Reply("done"));

    public Func<CancellationToken, IAsyncEnumerable<AgentResponseUpdate>> Stream { get; init; } = static ct => AgentBehaviours.Updates(3, ct);

    /// <summary>Gets a task that completes with the token of the first turn, once the agent has been called.</summary>
    public Task<CancellationToken> Called => _called.Task;

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Gets the run context the last turn saw when it started.</summary>
    public RunContext? SeenContext { get; private set; }

    protected override ValueTask<AgentSession> CreateSessionCoreAsync(CancellationToken cancellationToken = default)
        => new(new FakeSession());

    protected override ValueTask<JsonElement> SerializeSessionCoreAsync(AgentSession session, JsonSerializerOptions? jsonSerializerOptions = null, CancellationToken cancellationToken = default)
        => new(session.StateBag.Serialize());

    protected override ValueTask<AgentSession> DeserializeSessionCoreAsync(JsonElement serializedState, JsonSerializerOptions? jsonSerializerOptions = null, CancellationToken cancellationToken = default)
        => new(new FakeSession(AgentSessionStateBag.Deserialize(serializedState)));

    protected override Task<AgentResponse> RunCoreAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        Record(cancellationToken);
        return Turn(cancellationToken);
    }

    protected override IAsyncEnumerable<AgentResponseUpdate> RunCoreStreamingAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        Record(cancellationToken);
        return Stream(cancellationToken);
    }

    private void Record(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        SeenContext = RunContext.Current;
        _called.TrySetResult(cancellationToken);
    }

    private sealed class FakeSession : AgentSession
    {
        public FakeSession()
        {
        }

        public FakeSession(AgentSessionStateBag stateBag)
            : base(stateBag)
        {
        }
    }
}

/// <summary>Turn behaviours for <see cref="FakeAgent"/>.</summary>
internal static class AgentBehaviours
{
    public static AgentResponse Reply(string text) => new(new ChatMessage(ChatRole.Assistant, text));

    public static AgentResponseUpdate Update(int i) => new(ChatRole.Assistant, $"u{i}");

    /// <summary>Honours the token: ends (cancelled) exactly when it is cancelled, never on its own.</summary>
    public static async Task<AgentResponse> HonoursToken(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return Reply("unreachable");
    }

    /// <summary>A turn that ignores its token (a hung tool): ends only when <paramref name="release"/> completes.</summary>
    public static async Task<AgentResponse> IgnoresToken(Task release)
    {
        await release;
        return Reply("late");
    }

    /// <summary><paramref name="count"/> updates, then the end.</summary>
    public static async IAsyncEnumerable<AgentResponseUpdate> Updates(int count, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < count; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return Update(i);
        }
    }

    /// <summary>Updates each gated by <paramref name="gate"/>: the test decides when the next one comes.</summary>
    public static async IAsyncEnumerable<AgentResponseUpdate> Gated(int count, Func<int, Task> gate, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < count; i++)
        {
            await gate(i).WaitAsync(cancellationToken);
            yield return Update(i);
        }
    }

    /// <summary><paramref name="count"/> updates, then waits for its token (a stream that stops yielding but honours the abort).</summary>
    public static async IAsyncEnumerable<AgentResponseUpdate> UpdatesThenStallsHonouringToken(int count, TaskCompletionSource stalled, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < count; i++)
        {
            await Task.Yield();
            yield return Update(i);
        }

        stalled.TrySetResult();
        await Task.Delay(Timeout.Infinite, cancellationToken);
        yield return Update(-1);
    }

    /// <summary>One update, then a <c>MoveNextAsync</c> that ignores its token until <paramref name="release"/>, then a late update.</summary>
    public static async IAsyncEnumerable<AgentResponseUpdate> OneUpdateThenHangsIgnoringToken(TaskCompletionSource hanging, Task release)
    {
        yield return Update(0);
        hanging.TrySetResult();
        await release;
        yield return Update(99);
    }
}
