using System.ClientModel;
using System.Diagnostics;
using ChatClientRecovery;
using OpenAI;
using RunSupervisor.Extensions.AI.Tests.TestSupport;
using Xunit.Abstractions;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>
/// Real time, real sockets, the real OpenAI .NET SDK (through Microsoft.Extensions.AI.OpenAI) against the loopback
/// OpenAI-compatible server: a stream that stalls after its first chunk, and a tool that hangs ignoring its token.
/// Timeout 1 s, grace 1 s; every wait is bounded, and the class runs in about 7 s.
/// </summary>
public sealed class OpenAIClientIntegrationTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(8);

    // The SDK honours an abort within milliseconds on a quiet machine, but a loaded CI machine (six test assemblies at
    // once on two cores) has been seen to take over a second to unwind a cancelled read: the stall cases give the
    // provider this much grace, so "it honoured the abort" (TimedOut) stays apart from "it did not" (ForceEvicted)
    // without timing luck. The hung-tool cases keep the short grace: their eviction instant is what they measure.
    private static readonly TimeSpan StallGrace = TimeSpan.FromSeconds(5);

    // How late an eviction may be observed: the watchdog runs on its own thread, but the machine may be saturated.
    private static readonly TimeSpan EvictionSlack = TimeSpan.FromSeconds(2);

    private readonly ITestOutputHelper _output;
    private readonly RecordingLoggerFactory _logs = new();
    private readonly List<RunEndedEventArgs> _ended = [];
    private LoopbackOpenAIServer _server = null!;
    private ActiveRunRegistry _registry = null!;

    public OpenAIClientIntegrationTests(ITestOutputHelper output) => _output = output;

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

        // The first call in a process JIT-compiles the SDK's whole request path, which on a small CI machine can take
        // longer than the 1 s timeout: warm it up, supervised with a generous timeout, on a normal answer, so the
        // timings below measure the stall and the hang, not the JIT.
        using IChatClient warmUp = new ChatClientBuilder(OpenAIChatClient("warm-up"))
            .UseRunSupervisor(_registry, o => o.RunStartOptions = new RunStartOptions { Timeout = Bound })
            .Build();
        await warmUp.GetResponseAsync(Prompt, Conversation("warm-up")).WaitAsync(Bound);
        await ConsumeAsync(warmUp.GetStreamingResponseAsync(Prompt, Conversation("warm-up"))).WaitAsync(Bound);

        // The hung-tool cases also go through function invocation and the SDK's tool-call parsing, a path of its own: a
        // cold one has kept a run from reaching its tool within the 1 s deadline. Warm it with a tool that answers at once.
        AIFunction quickTool = AIFunctionFactory.Create(() => "shipped", "look_up_order", "Looks up the user's order.");
        using IChatClient toolWarmUp = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.ToolCallModel))
            .UseRunSupervisor(_registry, o => o.RunStartOptions = new RunStartOptions { Timeout = Bound })
            .UseFunctionInvocation()
            .Build();
        await toolWarmUp.GetResponseAsync(Prompt, new ChatOptions { ConversationId = "warm-up", Tools = [quickTool] }).WaitAsync(Bound);
        await ConsumeAsync(toolWarmUp.GetStreamingResponseAsync(Prompt, new ChatOptions { ConversationId = "warm-up", Tools = [quickTool] })).WaitAsync(Bound);
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
    public async Task Streaming_ServerStallsAfterFirstChunk_SdkHonoursAbortAndRunEndsTimedOut()
    {
        using IChatClient client = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.StallModel))
            .UseRunSupervisor(_registry, o => o.RunStartOptions = new RunStartOptions { GracePeriod = StallGrace })
            .Build();
        var texts = new List<string>();
        TimeSpan firstUpdateAt = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();

        Func<Task> act = async () =>
        {
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(Prompt, Conversation("stream-1")))
            {
                if (texts.Count == 0)
                {
                    firstUpdateAt = clock.Elapsed;
                }

                texts.Add(update.Text);
            }
        };

        RunTimedOutException ex = (await act.Should().ThrowExactlyAsync<RunTimedOutException>().WaitAsync(Bound)).Which;
        TimeSpan endedAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended("stream-1");
        Report("streaming stall", firstUpdateAt, ended, endedAt, ex);
        texts.Should().Contain(LoopbackOpenAIServer.FirstChunkText, "the chunk sent before the stall reached the consumer");
        ex.InnerException.Should().BeAssignableTo<OperationCanceledException>("the SDK honoured the abort token mid-stream");
        ended.Reason.Should().Be(RunEndReason.TimedOut);
        ended.Duration.Should().BeGreaterThanOrEqualTo(Timeout).And.BeLessThan(Timeout + StallGrace, "it ended on the abort, not by eviction");
        endedAt.Should().BeLessThan(Timeout + StallGrace);
        _registry.IsActive("stream-1").Should().BeFalse("the session is free");
        _registry.AbandonedCount.Should().Be(0);
    }

    [Fact]
    public async Task GetResponse_ServerStallsMidBody_SdkHonoursAbortAndRunEndsTimedOut()
    {
        using IChatClient client = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.StallModel))
            .UseRunSupervisor(_registry, o => o.RunStartOptions = new RunStartOptions { GracePeriod = StallGrace })
            .Build();
        var clock = Stopwatch.StartNew();

        RunTimedOutException ex = (await FluentActions.Awaiting(() => client.GetResponseAsync(Prompt, Conversation("response-1")))
            .Should().ThrowExactlyAsync<RunTimedOutException>().WaitAsync(Bound)).Which;
        TimeSpan endedAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended("response-1");
        Report("non-streaming stall", null, ended, endedAt, ex);
        ended.Reason.Should().Be(RunEndReason.TimedOut);
        ended.Duration.Should().BeLessThan(Timeout + StallGrace);
        _registry.IsActive("response-1").Should().BeFalse("the session is free");
    }

    [Fact]
    public async Task GetResponse_ToolHangsIgnoringToken_RunForceEvictedOnTimeAndToolLedgered()
    {
        var toolCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var toolGate = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        AIFunction tool = HungTool(toolCalled, toolGate);
        using IChatClient client = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.ToolCallModel))
            .UseRunSupervisor(_registry)
            .UseFunctionInvocation()
            .Build();
        var clock = Stopwatch.StartNew();

        Task<ChatResponse> call = client.GetResponseAsync(Prompt, new ChatOptions { ConversationId = "tool-1", Tools = [tool] });
        await WaitForToolCallAsync(toolCalled.Task, call);
        TimeSpan toolCalledAt = clock.Elapsed;
        RunEvictedException ex = (await FluentActions.Awaiting(() => call).Should().ThrowExactlyAsync<RunEvictedException>().WaitAsync(Bound)).Which;
        TimeSpan endedAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended("tool-1");
        Report("hung tool (GetResponseAsync)", toolCalledAt, ended, endedAt, ex);
        ended.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Duration.Should().BeGreaterThanOrEqualTo(Timeout + Grace).And.BeLessThan(Timeout + Grace + EvictionSlack, "evicted on time");
        _registry.IsActive("tool-1").Should().BeFalse("the session is free although the tool never returned");
        _registry.GetAbandonedRuns().Should().ContainSingle(r => r.RunId == ex.RunId, "the hung tool's task is quarantined in the ledger");

        // The tool finally returns: the abandoned run settles and leaves the ledger.
        toolGate.SetResult("too late");
        await _logs.WaitForAsync("AbandonedRunSettled").WaitAsync(Bound);
        _registry.AbandonedCount.Should().Be(0);
        _output.WriteLine($"hung tool released at {clock.Elapsed.TotalMilliseconds:0} ms; the abandoned run settled and left the ledger");
    }

    [Fact]
    public async Task Streaming_ToolHangsIgnoringToken_ConsumerGetsRunEvictedExceptionOnTime()
    {
        var toolCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var toolGate = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        AIFunction tool = HungTool(toolCalled, toolGate);
        using IChatClient client = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.ToolCallModel))
            .UseRunSupervisor(_registry)
            .UseFunctionInvocation()
            .Build();
        var clock = Stopwatch.StartNew();

        Task<List<string>> consume = ConsumeAsync(client.GetStreamingResponseAsync(Prompt, new ChatOptions { ConversationId = "tool-2", Tools = [tool] }));
        await WaitForToolCallAsync(toolCalled.Task, consume);
        TimeSpan toolCalledAt = clock.Elapsed;
        RunEvictedException ex = (await FluentActions.Awaiting(() => consume).Should().ThrowExactlyAsync<RunEvictedException>().WaitAsync(Bound)).Which;
        TimeSpan endedAt = clock.Elapsed;

        RunEndedEventArgs ended = Ended("tool-2");
        Report("hung tool (streaming)", toolCalledAt, ended, endedAt, ex);
        ended.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Duration.Should().BeGreaterThanOrEqualTo(Timeout + Grace).And.BeLessThan(Timeout + Grace + EvictionSlack, "evicted on time");
        _registry.IsActive("tool-2").Should().BeFalse();
        _registry.GetAbandonedRuns().Should().ContainSingle(r => r.RunId == ex.RunId);

        toolGate.SetResult("too late");
        await _logs.WaitForAsync("AbandonedRunSettled").WaitAsync(Bound);
        _registry.AbandonedCount.Should().Be(0);
    }

    private static AIFunction HungTool(TaskCompletionSource called, TaskCompletionSource<string> gate) => AIFunctionFactory.Create(
        async () =>
        {
            // The realistic zombie: host code around the provider that awaits something without the token.
            called.TrySetResult();
            return await gate.Task;
        },
        "look_up_order",
        "Looks up the user's order.");

    /// <summary>Waits until the hung tool is called; if the run ends first, fails with how it ended rather than a bare timeout.</summary>
    private static async Task WaitForToolCallAsync(Task toolCalled, Task call)
    {
        await Task.WhenAny(toolCalled, call).WaitAsync(Bound);
        toolCalled.IsCompleted.Should().BeTrue($"the run calls its tool before it ends, but it ended: {call.Exception?.GetBaseException().Message ?? call.Status.ToString()}");
    }

    private IChatClient OpenAIChatClient(string model) =>
        new OpenAIClient(new ApiKeyCredential("test"), new OpenAIClientOptions { Endpoint = _server.BaseAddress })
            .GetChatClient(model)
            .AsIChatClient();

    private RunEndedEventArgs Ended(string sessionId)
    {
        lock (_ended)
        {
            return _ended.Should().ContainSingle(e => e.SessionId == sessionId).Subject;
        }
    }

    private void Report(string scenario, TimeSpan? firstEventAt, RunEndedEventArgs ended, TimeSpan callerSawAt, Exception ex) => _output.WriteLine(
        $"{scenario}: {(firstEventAt is { } t ? $"first chunk/tool call at {t.TotalMilliseconds:0} ms; " : "")}" +
        $"run ended {ended.Reason} after {ended.Duration.TotalMilliseconds:0} ms (deadline {Timeout.TotalMilliseconds:0} ms, eviction {(Timeout + Grace).TotalMilliseconds:0} ms); " +
        $"caller saw {ex.GetType().Name} at {callerSawAt.TotalMilliseconds:0} ms");
}
