using System.Globalization;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using RunSupervisor.Agents;
using RunSupervisor.Benchmarks.Benchmarks;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// <c>alloc</c>: bytes allocated per operation for every benchmark case and implementation, counted exactly
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>, and <see cref="GC.GetTotalAllocatedBytes(bool)"/> for all
/// threads), and with <c>--types</c> attributed to types by sampling; and the thread-pool work items an operation
/// costs (<see cref="ThreadPool.CompletedWorkItemCount"/>), each a hop between threads. Neither count depends on how
/// busy the machine is, so this mode gives stable figures where timings cannot.
/// </summary>
public static class AllocationProfile
{
    /// <summary>Runs the mode.</summary>
    /// <param name="args">Options: <c>--ops 200000</c>, <c>--active-runs 1000</c>, <c>--types</c>, <c>--filter text</c>.</param>
    /// <returns>The exit code.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int ops = args.GetInt("ops", 200_000);
        int activeRuns = args.GetInt("active-runs", 1_000);
        bool types = args.HasFlag("types");
        string? filter = args.GetString("filter");
        args.ThrowIfUnknown();

        const string busy = "warm-00000000";
        const string idle = "idle-session";
        Func<CancellationToken, Task<int>> provider = static _ => CompletedResult;
        using FloorSupervisor floor = WarmRegistries.Floor(activeRuns);
        using PollyPeer peer = WarmRegistries.Peer(activeRuns);
        using ActiveRunRegistry registry = WarmRegistries.Registry(activeRuns);
        using ActiveRunRegistry registryWithPolicy = WarmRegistries.Registry(activeRuns);
        using var policy = new HeartbeatQueuePolicy(registryWithPolicy);
        using var semaphore = new SemaphoreSlim(0, 1);
        var waitOptions = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait };
        RunHandle handOffCurrent = registry.Start("s-handoff");
        AIAgent bareAgent = new AgentTurnBenchmarks.CompletedAgent();
        AIAgent supervisedAgent = bareAgent.AsBuilder().UseRunSupervisor(registry).Build();
        AIAgent passThroughAgent = new AgentTurnBenchmarks.PassThroughAgent(bareAgent);
        AgentSession agentSession = bareAgent.CreateSessionAsync().AsTask().GetAwaiter().GetResult();
        _ = SupervisedAgent.GetSessionId(agentSession);
        ChatMessage[] messages = [new(ChatRole.User, "hi")];

        (string Case, string Impl, Action Op)[] cases =
        [
            ("a start+release", "Floor", () => floor.StartAndRelease("s-a")),
            ("a start+release", "Peer (Polly)", () => peer.StartAndRelease("s-a")),
            ("a start+release", "RunSupervisor", () => registry.Start("s-a").Dispose()),
            ("a start+release", "RunSupervisor + policy", () => registryWithPolicy.Start("s-a").Dispose()),
            ("b RunAsync completed", "Floor", () => floor.RunAsync("s-b", provider).GetAwaiter().GetResult()),
            ("b RunAsync completed", "Peer (Polly)", () => peer.RunAsync("s-b", provider).GetAwaiter().GetResult()),
            ("b RunAsync completed", "RunSupervisor", () => registry.RunAsync("s-b", provider).GetAwaiter().GetResult()),
            ("c IsActive idle", "Floor", () => floor.IsActive(idle)),
            ("c IsActive idle", "RunSupervisor", () => registry.IsActive(idle)),
            ("c IsActive busy", "Floor", () => floor.IsActive(busy)),
            ("c IsActive busy", "RunSupervisor", () => registry.IsActive(busy)),
            ("c TryGetRun idle", "RunSupervisor", () => registry.TryGetRun(idle, out _)),
            ("c TryGetRun busy", "RunSupervisor", () => registry.TryGetRun(busy, out _)),
            ("c Resolve idle heartbeat", "Floor", () => floor.Resolve(new QueueRequest(idle, IsHeartbeat: true))),
            ("c Resolve idle heartbeat", "RunSupervisor", () => policy.Resolve(new QueueRequest(idle, IsHeartbeat: true))),
            ("c Resolve busy message", "Floor", () => floor.Resolve(new QueueRequest(busy, IsHeartbeat: false))),
            ("c Resolve busy message", "RunSupervisor", () => policy.Resolve(new QueueRequest(busy, IsHeartbeat: false))),
            ("c Resolve busy heartbeat", "Floor", () => floor.Resolve(new QueueRequest(busy, IsHeartbeat: true))),
            ("c Resolve busy heartbeat", "RunSupervisor", () => policy.Resolve(new QueueRequest(busy, IsHeartbeat: true))),
            ("e agent turn", "Bare agent", () => bareAgent.RunAsync(messages, agentSession).GetAwaiter().GetResult()),
            ("e agent turn", "Pass-through delegating agent", () => passThroughAgent.RunAsync(messages, agentSession).GetAwaiter().GetResult()),
            ("e agent turn", "Supervised agent", () => supervisedAgent.RunAsync(messages, agentSession).GetAwaiter().GetResult()),
            ("e agent stream (10 updates)", "Bare agent", () => Consume(bareAgent.RunStreamingAsync(messages, agentSession))),
            ("e agent stream (10 updates)", "Pass-through delegating agent", () => Consume(passThroughAgent.RunStreamingAsync(messages, agentSession))),
            ("e agent stream (10 updates)", "Supervised agent", () => Consume(supervisedAgent.RunStreamingAsync(messages, agentSession))),
            ("hand-off to one waiter", "SemaphoreSlim", () =>
            {
                Task waiter = semaphore.WaitAsync();
                semaphore.Release();
                waiter.GetAwaiter().GetResult();
            }),
            ("hand-off to one waiter", "RunSupervisor", () =>
            {
                ValueTask<RunHandle> waiter = registry.StartAsync("s-handoff", waitOptions);
                handOffCurrent.Dispose();
                handOffCurrent = waiter.GetAwaiter().GetResult();
            }),
        ];

        Console.WriteLine($"# alloc: {ops:N0} operations per case, {activeRuns:N0} active runs; .NET {Environment.Version}");
        Console.WriteLine();
        Console.WriteLine("| case | implementation | B/op (this thread) | B/op (all threads) | pool work items/op |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        using AllocationSampler? sampler = types ? new AllocationSampler() : null;
        List<(string Title, IReadOnlyList<KeyValuePair<string, long>> Types)> breakdowns = [];
        foreach ((string name, string impl, Action op) in cases)
        {
            if (filter is not null && !$"{name} {impl}".Contains(filter, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            for (int i = 0; i < 20_000; i++)
            {
                op();
            }

            sampler?.Start();
            long thread0 = GC.GetAllocatedBytesForCurrentThread();
            long total0 = GC.GetTotalAllocatedBytes(precise: true);
            long workItems0 = ThreadPool.CompletedWorkItemCount;
            for (int i = 0; i < ops; i++)
            {
                op();
            }

            double threadPerOp = (double)(GC.GetAllocatedBytesForCurrentThread() - thread0) / ops;
            double totalPerOp = (double)(GC.GetTotalAllocatedBytes(precise: true) - total0) / ops;
            double workItemsPerOp = (double)(ThreadPool.CompletedWorkItemCount - workItems0) / ops;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {impl} | {threadPerOp:F1} | {totalPerOp:F1} | {workItemsPerOp:F2} |"));
            if (sampler is not null)
            {
                sampler.Stop();
                breakdowns.Add(($"{name} — {impl}", [.. sampler.BytesByType.OrderByDescending(static t => t.Value).Take(10)]));
            }
        }

        foreach ((string title, IReadOnlyList<KeyValuePair<string, long>> byType) in breakdowns)
        {
            Console.WriteLine();
            Console.WriteLine($"### {title} (sampled, ≈ B/op by type)");
            foreach (KeyValuePair<string, long> entry in byType)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"- {entry.Key}: {(double)entry.Value / ops:F1}"));
            }
        }

        return 0;
    }

    private static readonly Task<int> CompletedResult = Task.FromResult(1);

    /// <summary>Consumes a stream as <c>await foreach</c> does, as the streaming benchmark does, and waits for it.</summary>
    private static void Consume(IAsyncEnumerable<AgentResponseUpdate> stream) => ConsumeAsync(stream).GetAwaiter().GetResult();

    private static async Task ConsumeAsync(IAsyncEnumerable<AgentResponseUpdate> stream)
    {
        await foreach (AgentResponseUpdate update in stream.ConfigureAwait(false))
        {
            _ = update;
        }
    }
}
