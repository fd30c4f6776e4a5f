using System.ClientModel;
using System.Diagnostics;
using ChatClientRecovery;
using OpenAI;
using Xunit.Abstractions;

namespace RunSupervisor.Agents.Tests.Agents;

/// <summary>
/// Real time, real sockets: a <see cref="ChatClientAgent"/> over the real OpenAI .NET SDK (through
/// Microsoft.Extensions.AI.OpenAI) against the loopback OpenAI-compatible server, on an ephemeral 127.0.0.1 port.
/// Short timeouts, generous bounds; every wait is bounded and the class runs in a few seconds.
/// </summary>
[Trait("Category", "RealTime")]
public sealed class SupervisedAgentOpenAIRealTimeTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private readonly ITestOutputHelper _output;
    private readonly RecordingLoggerFactory _logs = new();
    private readonly List<RunEndedEventArgs> _ended = [];
    private LoopbackOpenAIServer _server = null!;
    private ActiveRunRegistry _registry = null!;

    public SupervisedAgentOpenAIRealTimeTests(ITestOutputHelper output) => _output = output;

    public async Task InitializeAsync()
    {
        _server = LoopbackOpenAIServer.Start();
        _registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace }, TimeProvider.System, _logs);
        _registry.RunEnded += (_, e) =>
        {
            lock (_ended)
            {
                _ended.Add(e);
            }
        };

        // The first turn in a process JIT-compiles the agent's and the SDK's whole request path, which on a small CI
        // machine can take longer than the timeouts below: warm both paths up with a generous timeout, so the timings
        // measure the stall and the hang, not the JIT.
        AIAgent warmUp = Agent("warm-up", tools: [], o => o.RunStartOptions = new RunStartOptions { Timeout = Bound });
        AgentSession session = await warmUp.CreateSessionAsync();
        await warmUp.RunAsync("hello", session).WaitAsync(Bound);
        await ConsumeAsync(warmUp.RunStreamingAsync("hello", session)).WaitAsync(Bound);
        lock (_ended)
        {
            _ended.Clear();
        }
    }

    public async Task DisposeAsync()
    {
        _registry.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task RunStreamingAsync_SseStreamStallsAfterOneChunk_EndsStalledAtTheIdleTimeoutWellBeforeTheDeadline_RealTime()
    {
        TimeSpan idle = TimeSpan.FromMilliseconds(800);
        TimeSpan deadline = TimeSpan.FromSeconds(20);

        // The SDK honours the abort within milliseconds on a quiet machine, but a loaded CI machine (six test assemblies
        // at once on two cores) has been seen to take over a second to unwind the cancelled read: a generous grace keeps
        // "the provider honoured the idle abort" (Stalled) apart from "it did not" (ForceEvicted) without timing luck.
        TimeSpan grace = TimeSpan.FromSeconds(5);
        AIAgent agent = Agent(LoopbackOpenAIServer.StallModel, tools: [], o => o.RunStartOptions = new RunStartOptions { Timeout = deadline, GracePeriod = grace, IdleTimeout = idle });
        AgentSession session = await agent.CreateSessionAsync();
        var texts = new List<string>();
        var clock = Stopwatch.StartNew();

        RunTimedOutException ex = (await FluentActions.Awaiting(async () =>
        {
            await foreach (AgentResponseUpdate update in agent.RunStreamingAsync("hello", session))
            {
                texts.Add(update.Text);
            }
        }).Should().ThrowExactlyAsync<RunTimedOutException>().WaitAsync(Bound)).Which;
        TimeSpan sawAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended(session);
        _output.WriteLine($"stalled stream: run ended {ended.Reason} after {ended.Duration.TotalMilliseconds:0} ms (idle {idle.TotalMilliseconds:0} ms, deadline {deadline.TotalSeconds:0} s); caller saw it at {sawAt.TotalMilliseconds:0} ms");
        texts.Should().Contain(LoopbackOpenAIServer.FirstChunkText, "the chunk sent before the stall reached the consumer");
        ex.Reason.Should().Be(RunEndReason.Stalled);
        ended.Reason.Should().Be(RunEndReason.Stalled);
        ended.Duration.Should().BeGreaterThanOrEqualTo(idle).And.BeLessThan(idle + grace, "the idle timeout, not the 20 s deadline, ended it");
        _registry.IsActive(SupervisedAgent.GetSessionId(session)).Should().BeFalse();
    }

    [Fact]
    public async Task RunAsync_ToolHangsIgnoringItsToken_ForceEvictedAtDeadlinePlusGraceAndTheSessionTakesTheNextTurn_RealTime()
    {
        var toolCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        int calls = 0;
        AIFunction tool = AIFunctionFactory.Create(
            async () =>
            {
                // The realistic zombie: host code that awaits something without the token; only its first call hangs.
                if (Interlocked.Increment(ref calls) > 1)
                {
                    return "found";
                }

                toolCalled.TrySetResult();
                return await release.Task;
            },
            "look_up_order",
            "Looks up the user's order.");
        AIAgent agent = Agent(LoopbackOpenAIServer.ToolCallModel, [tool]);
        AgentSession session = await agent.CreateSessionAsync();
        var clock = Stopwatch.StartNew();

        Task<AgentResponse> hung = agent.RunAsync("where is my order?", session);
        await toolCalled.Task.WaitAsync(Bound);
        RunEvictedException ex = (await FluentActions.Awaiting(() => hung).Should().ThrowExactlyAsync<RunEvictedException>().WaitAsync(Bound)).Which;
        TimeSpan sawAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended(session);
        _output.WriteLine($"hung tool: run ended {ended.Reason} after {ended.Duration.TotalMilliseconds:0} ms (eviction due at {(Timeout + Grace).TotalMilliseconds:0} ms); caller saw {ex.GetType().Name} at {sawAt.TotalMilliseconds:0} ms");
        ended.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Duration.Should().BeGreaterThanOrEqualTo(Timeout + Grace).And.BeLessThan(Timeout + Grace + TimeSpan.FromSeconds(2), "evicted on time, with slack for a saturated machine");
        _registry.GetAbandonedRuns().Should().ContainSingle(r => r.RunId == ex.RunId, "the hung tool is quarantined");

        AgentResponse next = await agent.RunAsync("and now?", session).WaitAsync(Bound);
        next.Text.Should().Be("All done.");
        release.SetResult("too late");
    }

    [Fact]
    public async Task RunAsync_TwoConcurrentTurnsOnOneSessionWithWait_RunOneAfterTheOtherInOrder_RealTime()
    {
        var toolRuns = new List<long>();
        AIFunction tool = AIFunctionFactory.Create(
            async () =>
            {
                // The tool sees its turn's run: the first turn is the one that calls it, and it takes a while.
                lock (toolRuns)
                {
                    toolRuns.Add(RunContext.Current?.RunId ?? -1);
                }

                await Task.Delay(400);
                return "found";
            },
            "look_up_order",
            "Looks up the user's order.");
        AIAgent agent = Agent(LoopbackOpenAIServer.ToolCallModel, [tool], o =>
        {
            o.WhenBusy = SessionBusyBehavior.Wait;
            o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(10) };
        });
        AgentSession session = await agent.CreateSessionAsync();
        string sessionId = SupervisedAgent.GetSessionId(session);

        // Whether the second turn had finished when the first turn's run ended. The first turn's own task completes a
        // little after its run ends (the agent's code after the supervised call), so on a loaded machine the second
        // turn's task may complete before it: the order is judged at the runs' ends, not by which task completes first.
        Task<AgentResponse>? second = null;
        bool? secondDoneAtFirstEnd = null;
        void OnFirstEnded(object? sender, RunEndedEventArgs e) => secondDoneAtFirstEnd ??= second?.IsCompleted ?? false;
        _registry.RunEnded += OnFirstEnded;

        Task<AgentResponse> first = agent.RunAsync("where is my order?", session);
        var waited = Stopwatch.StartNew();
        while (!_registry.IsActive(sessionId))
        {
            waited.Elapsed.Should().BeLessThan(Bound, "the first turn starts its run");
            await Task.Delay(5);
        }

        second = agent.RunAsync("thanks, anything else?", session);
        _registry.GetQueuedCount(sessionId).Should().Be(1, "the second turn waits for the first");
        await Task.WhenAll(first, second).WaitAsync(Bound);
        _registry.RunEnded -= OnFirstEnded;

        secondDoneAtFirstEnd.Should().BeFalse("the second turn cannot finish before the first turn's run has ended");
        (await first).Text.Should().Be("All done.");
        (await second).Text.Should().Be("All done.");
        RunEndedEventArgs[] ends;
        lock (_ended)
        {
            ends = [.. _ended];
        }

        ends.Should().HaveCount(2).And.OnlyContain(e => e.Reason == RunEndReason.Completed);
        ends[0].RunId.Should().BeLessThan(ends[1].RunId);
        DateTimeOffset secondStarted = ends[1].EndedAt - ends[1].Duration;
        secondStarted.Should().BeOnOrAfter(ends[0].EndedAt, "the second turn started only once the first had ended");
        toolRuns.Should().Equal([ends[0].RunId], "the tool ran inside the first turn's run, with RunContext set");
        _output.WriteLine($"turn 1: run {ends[0].RunId}, {ends[0].Duration.TotalMilliseconds:0} ms; turn 2: run {ends[1].RunId}, started {(secondStarted - ends[0].EndedAt).TotalMilliseconds:0} ms after turn 1 ended");
    }

    private AIAgent Agent(string model, IList<AITool> tools, Action<SupervisedAgentOptions>? configure = null)
    {
        IChatClient chat = new OpenAIClient(new ApiKeyCredential("test"), new OpenAIClientOptions { Endpoint = _server.BaseAddress })
            .GetChatClient(model)
            .AsIChatClient();
        return new ChatClientAgent(chat, instructions: "You help with orders.", tools: tools)
            .AsBuilder()
            .UseRunSupervisor(_registry, configure)
            .Build();
    }

    private RunEndedEventArgs Ended(AgentSession session)
    {
        string id = SupervisedAgent.GetSessionId(session);
        lock (_ended)
        {
            return _ended.Should().ContainSingle(e => e.SessionId == id).Subject;
        }
    }
}
