// ChatClientRecovery: the real OpenAI .NET SDK (through Microsoft.Extensions.AI) against a loopback OpenAI-compatible
// server, supervised by RunSupervisor with UseRunSupervisor. Two endings on one session, with heartbeats ticking:
//   1. the server stalls mid-stream: the SDK honours the abort at the deadline -> RunTimedOutException, session free;
//   2. a tool hangs ignoring its token: nothing honours the abort -> force eviction at deadline + grace,
//      RunEvictedException, session free, the hung call quarantined in the abandoned ledger.
// Exit 0 when the session recovered both times (CI relies on it).
using System.ClientModel;
using System.Diagnostics;
using System.Text;
using ChatClientRecovery;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OpenAI;
using RunSupervisor;
using RunSupervisor.Samples;

const string SessionId = "session-1";
TimeSpan heartbeatInterval = TimeSpan.FromSeconds(1);
TimeSpan scenarioBound = TimeSpan.FromSeconds(8);     // each ending takes 2 s (timeout) or 4 s (timeout + grace)

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(
        """
        ChatClientRecovery: watch RunSupervisor recover a session behind a real IChatClient (the OpenAI .NET SDK).

        Usage: dotnet run --project samples/ChatClientRecovery [-- --verbose]

          --verbose   also print the library's Debug and Information log lines

        Exit codes: 0 recovered from both endings; 1 not recovered (the last lines say why); 64 unknown argument.
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
var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromSeconds(2), GracePeriod = TimeSpan.FromSeconds(2), MaxRunDuration = TimeSpan.FromMinutes(1) };
await using LoopbackOpenAIServer server = LoopbackOpenAIServer.Start(line => timeline.Print($"server: {line}"));
using var registry = new ActiveRunRegistry(options, TimeProvider.System, timeline);
using var policy = new HeartbeatQueuePolicy(registry, timeline.CreateLogger<HeartbeatQueuePolicy>());

// The real SDK, pointed at the loopback server. The supervisor goes outermost so that one run spans the tool loop.
IChatClient OpenAIChatClient(string model) =>
    new OpenAIClient(new ApiKeyCredential("not-a-real-key"), new OpenAIClientOptions { Endpoint = server.BaseAddress })
        .GetChatClient(model)
        .AsIChatClient();

using IChatClient stallingClient = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.StallModel))
    .UseRunSupervisor(registry)
    .Build();
using IChatClient toolClient = new ChatClientBuilder(OpenAIChatClient(LoopbackOpenAIServer.ToolCallModel))
    .UseRunSupervisor(registry)
    .UseFunctionInvocation()
    .Build();

// The hung tool: host code around the model call that awaits something without the token (the realistic zombie).
var toolNeverReturns = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
AIFunction lookUpOrder = AIFunctionFactory.Create(
    async () =>
    {
        timeline.Print("tool look_up_order: called; it awaits a back-end that never answers, and ignores the abort");
        return await toolNeverReturns.Task;
    },
    "look_up_order",
    "Looks up the user's order.");

// Every owed heartbeat (the session became idle after dropping some) is delivered at once.
var owed = new List<TimeSpan>();
policy.HeartbeatOwed += (_, e) =>
{
    QueueDecision decision = policy.Resolve(new QueueRequest(e.SessionId, IsHeartbeat: true));
    lock (owed)
    {
        owed.Add(timeline.Elapsed);
    }

    timeline.Print($"heartbeat owed ({e.DroppedHeartbeats} dropped) → heartbeat {(decision.Action == QueueAction.RunNow ? "delivered" : decision.Action.ToString())} ({decision.Reason})");
};

using var stopHeartbeats = new CancellationTokenSource();
Task heartbeats = RunHeartbeatsAsync(stopHeartbeats.Token);
var failures = new List<string>();
try
{
    timeline.Print($"OpenAI-compatible server listening on {server.BaseAddress}");
    timeline.Print($"watchdog: abort at the {options.RunTimeout.TotalSeconds:0} s deadline, force-evict {options.GracePeriod.TotalSeconds:0} s later if the call has not settled");

    // The first call in a process JIT-compiles the SDK; without a ConversationId it passes through unsupervised.
    var warmUp = Stopwatch.StartNew();
    using (IChatClient warmUpClient = OpenAIChatClient("warm-up"))
    {
        await warmUpClient.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]).WaitAsync(scenarioBound);
    }

    timeline.Print($"warm-up: one unsupervised call (no ConversationId) answered in {warmUp.ElapsedMilliseconds} ms");
    await Task.Delay(TimeSpan.FromSeconds(1.2));

    // Ending 1: the server stalls after the first chunk; the SDK honours the abort token.
    timeline.Print("── ending 1: streaming; the server sends one chunk, then stalls with the connection open");
    await ExpectAsync<RunTimedOutException>("ending 1", async () =>
    {
        ChatOptions chat = new() { ConversationId = SessionId };
        await foreach (ChatResponseUpdate update in stallingClient.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Where is my order?")], chat))
        {
            timeline.Print($"consumer: update \"{update.Text}\"");
        }
    });
    await RecoveredAsync("ending 1", expectedOwed: 1);
    await Task.Delay(TimeSpan.FromSeconds(1.2));

    // Ending 2: the model asks for a tool, the tool hangs ignoring the token; only eviction frees the session.
    timeline.Print("── ending 2: the model calls a tool (UseFunctionInvocation), and the tool hangs");
    await ExpectAsync<RunEvictedException>("ending 2", () => toolClient.GetResponseAsync(
        [new ChatMessage(ChatRole.User, "Where is my order?")],
        new ChatOptions { ConversationId = SessionId, Tools = [lookUpOrder] }));
    await RecoveredAsync("ending 2", expectedOwed: 2);
    foreach (AbandonedRunInfo abandoned in registry.GetAbandonedRuns())
    {
        timeline.Print($"abandoned ledger: run {abandoned.RunId} of {abandoned.SessionId}, evicted at {abandoned.EvictedAt:HH:mm:ss.fff}; the hung tool call is quarantined until it settles (a Task cannot be killed)");
    }

    if (registry.AbandonedCount != 1)
    {
        failures.Add($"expected the hung tool's run in the abandoned ledger, found {registry.AbandonedCount} entries");
    }
}
finally
{
    await stopHeartbeats.CancelAsync();
    await heartbeats;
    timeline.Dispose();     // no library lines after the verdict
}

if (failures.Count == 0)
{
    timeline.Print($"VERDICT: recovered. {SessionId} came back after a stalled stream (timed out) and after a hung tool (force-evicted), and each owed heartbeat was delivered at once. Exit 0.");
    return 0;
}

failures.ForEach(failure => timeline.Print($"not recovered: {failure}"));
timeline.Print("VERDICT: NOT recovered. Exit 1.");
return 1;

async Task ExpectAsync<TException>(string ending, Func<Task> call)
    where TException : Exception
{
    try
    {
        await call().WaitAsync(scenarioBound);
        failures.Add($"{ending}: the call completed; expected {typeof(TException).Name}");
    }
    catch (TException ex)
    {
        timeline.Print($"caller: {typeof(TException).Name}: {ex.Message}");
    }
    catch (TimeoutException)
    {
        failures.Add($"{ending}: the caller was still waiting after {scenarioBound.TotalSeconds:0} s");
    }
    catch (Exception ex)
    {
        failures.Add($"{ending}: {ex.GetType().Name}: {ex.Message}; expected {typeof(TException).Name}");
    }
}

// Recovered = the session is idle and its owed heartbeat went out (it is raised before the caller's exception).
async Task RecoveredAsync(string ending, int expectedOwed)
{
    using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2));
    try
    {
        await registry.WaitForRunEndAsync(SessionId, TimeSpan.FromSeconds(2), bound.Token);
    }
    catch (OperationCanceledException)
    {
    }

    int delivered;
    lock (owed)
    {
        delivered = owed.Count;
    }

    if (registry.IsActive(SessionId))
    {
        failures.Add($"{ending}: {SessionId} is still busy");
    }
    else if (delivered < expectedOwed)
    {
        failures.Add($"{ending}: {SessionId} is idle, but no owed heartbeat was delivered");
    }
    else
    {
        timeline.Print($"{SessionId} is idle again");
    }
}

async Task RunHeartbeatsAsync(CancellationToken cancellationToken)
{
    using var timer = new PeriodicTimer(heartbeatInterval);
    int droppedInARow = 0;
    try
    {
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            QueueDecision decision = policy.Resolve(new QueueRequest(SessionId, IsHeartbeat: true));
            timeline.Print(decision.Action == QueueAction.RunNow
                ? $"heartbeat delivered ({decision.Reason})"
                : $"heartbeat dropped ×{++droppedInARow} ({decision.Reason})");
            if (decision.Action == QueueAction.RunNow)
            {
                droppedInARow = 0;
            }
        }
    }
    catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
    {
        // Shutting down.
    }
}
