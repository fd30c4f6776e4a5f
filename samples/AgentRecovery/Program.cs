// AgentRecovery: a Microsoft Agent Framework ChatClientAgent over the real OpenAI .NET SDK, against a loopback
// OpenAI-compatible server, supervised with AIAgentBuilder.UseRunSupervisor. Three endings, one session each:
//   1. a tool hangs ignoring its token: force eviction at deadline + grace, RunEvictedException, and the session
//      takes the user's next turn at once;
//   2. a heartbeat (background) turn is busy when the user writes: the user's turn preempts it and is answered;
//   3. the model's stream stalls after one chunk: the stream idle timeout catches it long before the deadline.
// Exit 0 only when all three recovered (CI relies on it).
using System.ClientModel;
using System.Diagnostics;
using System.Text;
using ChatClientRecovery;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OpenAI;
using RunSupervisor;
using RunSupervisor.Agents;
using RunSupervisor.Samples;

TimeSpan scenarioBound = TimeSpan.FromSeconds(10);

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(
        """
        AgentRecovery: watch RunSupervisor recover agent sessions (Microsoft Agent Framework, the OpenAI .NET SDK).

        Usage: dotnet run --project samples/AgentRecovery [-- --verbose]

          --verbose   also print the library's Debug and Information log lines

        Exit codes: 0 all three endings recovered; 1 not (the last lines say why); 64 unknown argument.
        """);
    return 0;
}

string[] unknown = [.. args.Except(["--verbose"])];
if (unknown.Length > 0)
{
    Console.Error.WriteLine($"Unknown argument: {unknown[0]} (try --help)");
    return 64;
}

Console.OutputEncoding = Encoding.UTF8;
var timeline = new Timeline(args.Contains("--verbose") ? LogLevel.Debug : LogLevel.Warning);
var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromSeconds(2), GracePeriod = TimeSpan.FromSeconds(1), MaxRunDuration = TimeSpan.FromMinutes(1) };
await using LoopbackOpenAIServer server = LoopbackOpenAIServer.Start(line => timeline.Print($"  server: {line}"));
using var registry = new ActiveRunRegistry(options, TimeProvider.System, timeline);
var ended = new List<RunEndedEventArgs>();
registry.RunEnded += (_, e) =>
{
    lock (ended)
    {
        ended.Add(e);
    }

    timeline.Print($"run {e.RunId} ended {e.Reason} after {e.Duration.TotalMilliseconds:0} ms{(e.Detail is null ? "" : $" ({e.Detail})")}");
};

// A ChatClientAgent per model the loopback server plays, each wrapped outermost: one run spans the whole turn.
AIAgent SupervisedAgentFor(string model, IList<AITool> tools, Action<SupervisedAgentOptions>? configure = null) =>
    new ChatClientAgent(
            new OpenAIClient(new ApiKeyCredential("not-a-real-key"), new OpenAIClientOptions { Endpoint = server.BaseAddress })
                .GetChatClient(model)
                .AsIChatClient(),
            instructions: "You help with orders.",
            tools: tools)
        .AsBuilder()
        .UseRunSupervisor(registry, configure)
        .Build();

// The hung tool: host code that awaits a back-end that never answers, ignoring the abort (the realistic zombie). Only
// its first call hangs, so the user's next turn shows the session working again.
var backEndNeverAnswers = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
int lookUps = 0;
AIFunction lookUpOrder = AIFunctionFactory.Create(
    async () =>
    {
        if (Interlocked.Increment(ref lookUps) > 1)
        {
            timeline.Print("tool look_up_order: answered at once");
            return "shipped yesterday";
        }

        timeline.Print($"tool look_up_order: called in run {RunContext.Current?.RunId} (fencing token {RunContext.Current?.FencingToken}); it awaits a back-end that never answers, and ignores the abort");
        return await backEndNeverAnswers.Task;
    },
    "look_up_order",
    "Looks up the user's order.");

// The heartbeat's tool: slow, but well-behaved (it honours the abort token it is given).
AIFunction checkInbox = AIFunctionFactory.Create(
    async (CancellationToken cancellationToken) =>
    {
        timeline.Print("tool check_inbox: the heartbeat's periodic check, slow (30 s) but honouring its token");
        await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
        return "nothing new";
    },
    "check_inbox",
    "Checks the user's inbox.");

AIAgent orderAgent = SupervisedAgentFor(LoopbackOpenAIServer.ToolCallModel, [lookUpOrder]);
AIAgent assistant = SupervisedAgentFor(LoopbackOpenAIServer.ToolCallModel, []);
AIAgent streamingAgent = SupervisedAgentFor(
    LoopbackOpenAIServer.StallModel,
    [],
    o => o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(15), IdleTimeout = TimeSpan.FromSeconds(1) });

var failures = new List<string>();
try
{
    timeline.Print($"OpenAI-compatible server listening on {server.BaseAddress}");
    timeline.Print($"watchdog: abort at the {options.RunTimeout.TotalSeconds:0} s deadline, force-evict {options.GracePeriod.TotalSeconds:0} s later; the streaming agent: 15 s deadline, 1 s stream idle timeout");

    // The first turn in a process JIT-compiles the agent and the SDK; without a session it passes through unsupervised.
    var warmUp = Stopwatch.StartNew();
    await assistant.RunAsync("hi").WaitAsync(scenarioBound);
    timeline.Print($"warm-up: one unsupervised turn (no AgentSession) answered in {warmUp.ElapsedMilliseconds} ms");

    await HungToolAsync();
    await HeartbeatPreemptedAsync();
    await StalledStreamAsync();

    if (registry.AbandonedCount != 1)
    {
        failures.Add($"expected the hung tool's run in the abandoned ledger, found {registry.AbandonedCount} entries");
    }
}
catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException or ClientResultException)
{
    failures.Add($"the sample itself failed: {ex.GetType().Name}: {ex.Message}");
}
finally
{
    timeline.Dispose();     // no library lines after the verdict
}

if (failures.Count == 0)
{
    timeline.Print("VERDICT: recovered. A hung tool was evicted and the session took the next turn, a heartbeat turn yielded to the user's, and a stalled stream was caught by the idle timeout. Exit 0.");
    return 0;
}

failures.ForEach(failure => timeline.Print($"not recovered: {failure}"));
timeline.Print("VERDICT: NOT recovered. Exit 1.");
return 1;

async Task HungToolAsync()
{
    timeline.Print("── ending 1: the model calls look_up_order, and the tool hangs ignoring its token");
    AgentSession alice = await orderAgent.CreateSessionAsync();
    string id = SupervisedAgent.GetSessionId(alice);
    timeline.Print($"session alice: id {id} (kept in the AgentSession's state)");
    if (await ExpectAsync<RunEvictedException>("ending 1", () => orderAgent.RunAsync("Where is my order?", alice)) is null)
    {
        return;
    }

    if (registry.IsActive(id))
    {
        failures.Add("ending 1: the session is still busy after the eviction");
        return;
    }

    timeline.Print("user: \"Any news?\" (the same session, right after the eviction)");
    AgentResponse reply = await orderAgent.RunAsync("Any news?", alice).WaitAsync(scenarioBound);
    timeline.Print($"agent: \"{reply.Text}\"");
    Check("ending 1", Last(id) is { Reason: RunEndReason.Completed }, "the session's next turn did not complete");
}

async Task HeartbeatPreemptedAsync()
{
    timeline.Print("── ending 2: a heartbeat turn (background) is running when the user writes");
    AgentSession bob = await assistant.CreateSessionAsync();
    string id = SupervisedAgent.GetSessionId(bob);
    timeline.Print($"session bob: id {id} (kept in the AgentSession's state)");
    var heartbeatOptions = new ChatClientAgentRunOptions(new ChatOptions { Tools = [checkInbox] })
    {
        AdditionalProperties = new AdditionalPropertiesDictionary { [SupervisedAgentOptions.BackgroundPropertyKey] = true },
    };
    Task<AgentResponse> heartbeat = assistant.RunAsync("heartbeat: anything to do?", bob, heartbeatOptions);
    while (!registry.IsActive(id) && !heartbeat.IsCompleted)
    {
        await Task.Delay(10);
    }

    await Task.Delay(TimeSpan.FromMilliseconds(400));
    timeline.Print("user: \"Hello!\" (a foreground turn on the same session)");
    AgentResponse reply = await assistant.RunAsync("Hello!", bob).WaitAsync(scenarioBound);
    timeline.Print($"agent: \"{reply.Text}\"");
    await ExpectAsync<OperationCanceledException>("ending 2 (the heartbeat)", () => heartbeat);
    Check("ending 2", ended.Any(e => e.SessionId == id && e.Reason == RunEndReason.Superseded && e.Detail?.StartsWith("preempted", StringComparison.Ordinal) == true), "the heartbeat turn was not preempted");
    Check("ending 2", Last(id) is { Reason: RunEndReason.Completed }, "the user's turn did not complete");
}

async Task StalledStreamAsync()
{
    timeline.Print("── ending 3: streaming; the server sends one chunk, then stalls with the connection open");
    AgentSession carol = await streamingAgent.CreateSessionAsync();
    string id = SupervisedAgent.GetSessionId(carol);
    timeline.Print($"session carol: id {id} (kept in the AgentSession's state)");
    RunTimedOutException? stalled = await ExpectAsync<RunTimedOutException>("ending 3", async () =>
    {
        await foreach (AgentResponseUpdate update in streamingAgent.RunStreamingAsync("Tell me a long story.", carol))
        {
            timeline.Print($"consumer: update \"{update.Text}\"");
        }
    });
    if (stalled is null)
    {
        return;
    }

    Check("ending 3", stalled.Reason == RunEndReason.Stalled, $"the stream ended {stalled.Reason}, not Stalled");
    Check("ending 3", Last(id) is { } end && end.Duration < TimeSpan.FromSeconds(5), "the stall was not caught well before the 15 s deadline");
    Check("ending 3", !registry.IsActive(id), "the session is still busy");
}

async Task<TException?> ExpectAsync<TException>(string ending, Func<Task> call)
    where TException : Exception
{
    try
    {
        await call().WaitAsync(scenarioBound);
        failures.Add($"{ending}: the turn completed; expected {typeof(TException).Name}");
    }
    catch (TException ex)
    {
        timeline.Print($"caller: {ex.GetType().Name}: {ex.Message}");
        return ex;
    }
    catch (TimeoutException)
    {
        failures.Add($"{ending}: the caller was still waiting after {scenarioBound.TotalSeconds:0} s");
    }
    catch (Exception ex)
    {
        failures.Add($"{ending}: {ex.GetType().Name}: {ex.Message}; expected {typeof(TException).Name}");
    }

    return null;
}

RunEndedEventArgs? Last(string sessionId)
{
    lock (ended)
    {
        return ended.LastOrDefault(e => e.SessionId == sessionId);
    }
}

void Check(string ending, bool condition, string failure)
{
    if (!condition)
    {
        failures.Add($"{ending}: {failure}");
    }
}
