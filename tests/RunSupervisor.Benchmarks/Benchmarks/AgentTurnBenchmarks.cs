using System.Runtime.CompilerServices;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using RunSupervisor.Agents;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (e): the supervised agent's overhead over the bare agent for one completed turn of a fake inner agent: a
/// non-streaming turn whose task has already completed, and a streaming turn of 10 updates that are all ready. The
/// bare agent is the baseline, in the same run; the difference is what <see cref="SupervisedAgent"/> costs per turn.
/// </summary>
/// <remarks>
/// BenchmarkDotNet waits for each returned task by blocking its own thread, so a turn that hops to the thread pool (the
/// supervised one: a provider that blocks its thread must not block the caller) pays for waking a pool thread and then
/// the blocked one, every turn. The categories "awaited on a pool thread" measure what a host's request handler sees
/// instead: <see cref="AwaitedTurns"/> turns awaited one after the other by a loop on a pool thread, per invocation.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class AgentTurnBenchmarks : IDisposable
{
    private const int StreamUpdates = 10;

    /// <summary>How many turns one invocation of an "awaited on a pool thread" benchmark awaits in turn.</summary>
    private const int AwaitedTurns = 100;

    private const string RegistrySession = "bench-registry-run";

    private static readonly ChatMessage[] Messages = [new(ChatRole.User, "hi")];
    private static readonly Task<AgentResponse> CompletedResponse = Task.FromResult(new AgentResponse(new ChatMessage(ChatRole.Assistant, "done")));
    private static readonly Func<CancellationToken, Task<AgentResponse>> CompletedProvider = static _ => CompletedResponse;

    private ActiveRunRegistry _registry = null!;
    private AIAgent _bare = null!;
    private AIAgent _supervised = null!;
    private AIAgent _passThrough = null!;
    private AgentSession _session = null!;

    [GlobalSetup]
    public void Setup()
    {
        _registry = new ActiveRunRegistry(new RunSupervisorOptions());
        _bare = new CompletedAgent();
        _supervised = _bare.AsBuilder().UseRunSupervisor(_registry).Build();
        _passThrough = new PassThroughAgent(_bare);
        _session = _bare.CreateSessionAsync().AsTask().GetAwaiter().GetResult();

        // The session's id is created on its first supervised turn; measured turns are the later ones.
        _ = SupervisedAgent.GetSessionId(_session);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _registry.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>The bare agent's turn.</summary>
    /// <returns>The response.</returns>
    [Benchmark(Baseline = true, Description = "Bare agent")]
    [BenchmarkCategory("RunAsync")]
    public Task<AgentResponse> BareRun() => _bare.RunAsync(Messages, _session);

    /// <summary>Context, not a target: the same turn through a delegating agent that adds nothing.</summary>
    /// <returns>The response.</returns>
    [Benchmark(Description = "Pass-through delegating agent")]
    [BenchmarkCategory("RunAsync")]
    public Task<AgentResponse> PassThroughRun() => _passThrough.RunAsync(Messages, _session);

    /// <summary>The same turn through <see cref="SupervisedAgent"/>: one supervised run.</summary>
    /// <returns>The response.</returns>
    [Benchmark(Description = "Supervised agent")]
    [BenchmarkCategory("RunAsync")]
    public Task<AgentResponse> SupervisedRun() => _supervised.RunAsync(Messages, _session);

    /// <summary>
    /// Context, not a target: the core's <c>RunAsync</c> of a completed provider, which the supervised turn is. Its
    /// thread-pool hop (a provider that blocks its thread must not block the caller) is most of the turn's overhead.
    /// </summary>
    /// <returns>The provider's result.</returns>
    [Benchmark(Description = "ActiveRunRegistry.RunAsync alone")]
    [BenchmarkCategory("RunAsync")]
    public Task<AgentResponse> RegistryRunAsync() => _registry.RunAsync(RegistrySession, CompletedProvider);

    /// <summary>The bare agent's streaming turn, consumed to the end.</summary>
    /// <returns>The number of updates.</returns>
    [Benchmark(Baseline = true, Description = "Bare agent")]
    [BenchmarkCategory("RunStreamingAsync (10 updates)")]
    public Task<int> BareStream() => ConsumeAsync(_bare.RunStreamingAsync(Messages, _session));

    /// <summary>Context, not a target: the same streaming turn through a delegating agent that adds nothing.</summary>
    /// <returns>The number of updates.</returns>
    [Benchmark(Description = "Pass-through delegating agent")]
    [BenchmarkCategory("RunStreamingAsync (10 updates)")]
    public Task<int> PassThroughStream() => ConsumeAsync(_passThrough.RunStreamingAsync(Messages, _session));

    /// <summary>The same streaming turn through <see cref="SupervisedAgent"/>.</summary>
    /// <returns>The number of updates.</returns>
    [Benchmark(Description = "Supervised agent")]
    [BenchmarkCategory("RunStreamingAsync (10 updates)")]
    public Task<int> SupervisedStream() => ConsumeAsync(_supervised.RunStreamingAsync(Messages, _session));

    /// <summary>The bare agent's turns, awaited in turn on a pool thread.</summary>
    [Benchmark(Baseline = true, Description = "Bare agent", OperationsPerInvoke = AwaitedTurns)]
    [BenchmarkCategory("RunAsync, awaited on a pool thread")]
    public void BareRunAwaited() => AwaitOnPool(() => _bare.RunAsync(Messages, _session));

    /// <summary>The supervised agent's turns, awaited in turn on a pool thread.</summary>
    [Benchmark(Description = "Supervised agent", OperationsPerInvoke = AwaitedTurns)]
    [BenchmarkCategory("RunAsync, awaited on a pool thread")]
    public void SupervisedRunAwaited() => AwaitOnPool(() => _supervised.RunAsync(Messages, _session));

    /// <summary>The bare agent's streaming turns, each consumed to the end, awaited in turn on a pool thread.</summary>
    [Benchmark(Baseline = true, Description = "Bare agent", OperationsPerInvoke = AwaitedTurns)]
    [BenchmarkCategory("RunStreamingAsync (10 updates), awaited on a pool thread")]
    public void BareStreamAwaited() => AwaitOnPool(() => ConsumeAsync(_bare.RunStreamingAsync(Messages, _session)));

    /// <summary>The supervised agent's streaming turns, each consumed to the end, awaited in turn on a pool thread.</summary>
    [Benchmark(Description = "Supervised agent", OperationsPerInvoke = AwaitedTurns)]
    [BenchmarkCategory("RunStreamingAsync (10 updates), awaited on a pool thread")]
    public void SupervisedStreamAwaited() => AwaitOnPool(() => ConsumeAsync(_supervised.RunStreamingAsync(Messages, _session)));

    /// <summary>Awaits <see cref="AwaitedTurns"/> turns one after the other in a loop on a pool thread, as a request handler would, and waits for the loop.</summary>
    private static void AwaitOnPool(Func<Task> turn) => Task.Run(async () =>
    {
        for (int i = 0; i < AwaitedTurns; i++)
        {
            await turn().ConfigureAwait(false);
        }
    }).GetAwaiter().GetResult();

    private static async Task<int> ConsumeAsync(IAsyncEnumerable<AgentResponseUpdate> stream)
    {
        int count = 0;
        await foreach (AgentResponseUpdate update in stream.ConfigureAwait(false))
        {
            count++;
        }

        return count;
    }

    /// <summary>
    /// A delegating agent that adds nothing: what any middleware agent costs in Agent Framework itself (its run context
    /// and its streaming wrapper), before the middleware does anything. Context for the supervised agent's figures.
    /// </summary>
    /// <param name="inner">The agent it passes every call to.</param>
    internal sealed class PassThroughAgent(AIAgent inner) : DelegatingAIAgent(inner);

    /// <summary>An agent whose turns have already completed: cached response, cached updates, nothing allocated by it.</summary>
    internal sealed class CompletedAgent : AIAgent
    {
        private static readonly AgentResponseUpdate[] Updates = [.. Enumerable.Range(0, StreamUpdates).Select(static i => new AgentResponseUpdate(ChatRole.Assistant, $"u{i}"))];

        protected override ValueTask<AgentSession> CreateSessionCoreAsync(CancellationToken cancellationToken = default) => new(new BenchSession());

        protected override ValueTask<JsonElement> SerializeSessionCoreAsync(AgentSession session, JsonSerializerOptions? jsonSerializerOptions = null, CancellationToken cancellationToken = default)
            => new(session.StateBag.Serialize());

        protected override ValueTask<AgentSession> DeserializeSessionCoreAsync(JsonElement serializedState, JsonSerializerOptions? jsonSerializerOptions = null, CancellationToken cancellationToken = default)
            => new(new BenchSession());

        protected override Task<AgentResponse> RunCoreAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, CancellationToken cancellationToken = default)
            => CompletedResponse;

        protected override async IAsyncEnumerable<AgentResponseUpdate> RunCoreStreamingAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            foreach (AgentResponseUpdate update in Updates)
            {
                yield return update;
            }

            await Task.CompletedTask.ConfigureAwait(false);
        }

        private sealed class BenchSession : AgentSession;
    }
}
