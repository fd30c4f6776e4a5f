// A tiny outside consumer of the RunSupervisor packages: configuration binding, a supervised run, a zombie run that
// the watchdog evicts, the health check, the run activity, and the drain on shutdown. Exit code 0 when all behave.
using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RunSupervisor;

var failures = new List<string>();
void Check(bool ok, string what)
{
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}");
    if (!ok)
    {
        failures.Add(what);
    }
}

int activities = 0;
using var listener = new ActivityListener
{
    ShouldListenTo = source => source.Name == "RunSupervisor",
    Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
    ActivityStopped = _ => Interlocked.Increment(ref activities),
};
ActivitySource.AddActivityListener(listener);

HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
{
    ["RunSupervisor:RunTimeout"] = "00:00:00.300",
    ["RunSupervisor:GracePeriod"] = "00:00:00.200",
});
builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
builder.Services.AddRunSupervisor(builder.Configuration);
builder.Services.AddHealthChecks().AddRunSupervisorCheck();

using IHost host = builder.Build();
await host.StartAsync();
var registry = host.Services.GetRequiredService<ActiveRunRegistry>();
var health = host.Services.GetRequiredService<HealthCheckService>();

int answer = await registry.RunAsync("s1", static async token => { await Task.Yield(); return 42; });
Check(answer == 42, "RunAsync returns the provider's result");
Check((await health.CheckHealthAsync()).Status == HealthStatus.Healthy, "health is Healthy");

// A provider that ignores cancellation: evicted at timeout + grace, then in the abandoned ledger.
var never = new TaskCompletionSource<int>();
try
{
    await registry.RunAsync("s2", _ => never.Task);
    Check(false, "a hung provider is evicted");
}
catch (RunEvictedException)
{
    Check(true, "a hung provider is evicted (RunEvictedException)");
}

Check(!registry.IsActive("s2"), "the session is free after the eviction");
Check((await health.CheckHealthAsync()).Status == HealthStatus.Degraded, "health is Degraded with an abandoned run");
Check(Volatile.Read(ref activities) == 2, "one activity per run");

// The supervised IChatClient: a chat call on a conversation is a run on that session.
using IChatClient chat = new ChatClientBuilder(new EchoChatClient()).UseRunSupervisor(registry).Build();
ChatResponse reply = await chat.GetResponseAsync("ping", new ChatOptions { ConversationId = "s3" });
Check(reply.Text == "ping", "the supervised chat client returns the inner client's response");
Check(!registry.IsActive("s3"), "the chat call's run has ended");

await host.StopAsync();
never.SetResult(0);
Console.WriteLine(failures.Count == 0 ? "package consumer: all checks passed" : $"package consumer: {failures.Count} check(s) failed");
return failures.Count == 0 ? 0 : 1;

/// <summary>An inner chat client that answers with the last user message.</summary>
internal sealed class EchoChatClient : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        => Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, messages.Last().Text)));

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        yield return new ChatResponseUpdate(ChatRole.Assistant, messages.Last().Text);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose()
    {
    }
}
