// HungProviderRecovery: a model provider on loopback that accepts a request and never answers, a client that
// stops honouring cancellation once the request is sent, heartbeats dropped while the run hangs, and
// RunSupervisor's watchdog giving the session back. Exit 0 when the session recovered (CI relies on it).
using System.Text;
using HungProviderRecovery;
using Microsoft.Extensions.Logging;
using RunSupervisor;
using RunSupervisor.Samples;

const string SessionId = "session-1";
TimeSpan heartbeatInterval = TimeSpan.FromSeconds(1);

// The run starts 1.5 ticks after the heartbeat ticker: one heartbeat goes through while the session is still
// idle (the healthy case first), and the half tick keeps the watchdog's instants (run start + 3 s, + 5 s)
// clear of the heartbeat ticks, so the timeline reads the same on every run.
TimeSpan runStartDelay = TimeSpan.FromSeconds(1.5);
TimeSpan recoveryBound = TimeSpan.FromSeconds(12);        // from the sample's start; recovery takes about 5
TimeSpan noWatchdogWindow = TimeSpan.FromSeconds(7);      // from the run's start; the watchdog would need 5

string[] unknown = [.. args.Except(["--no-watchdog", "--verbose", "--help", "-h"])];
if (unknown.Length > 0)
{
    Console.Error.WriteLine($"Unknown argument: {unknown[0]}");
    PrintUsage(Console.Error);
    return 64;
}

if (args.Contains("--help") || args.Contains("-h"))
{
    PrintUsage(Console.Out);
    return 0;
}

bool noWatchdog = args.Contains("--no-watchdog");
Console.OutputEncoding = Encoding.UTF8;

// Library log lines at Warning and above (RunTimedOut, RunForceEvicted) tell the recovery story; --verbose adds
// Debug and Information (RunStarted, HeartbeatDropped, HeartbeatOwed, RunEnded, ...).
var timeline = new Timeline(args.Contains("--verbose") ? LogLevel.Debug : LogLevel.Warning);

// Short deadlines so the whole story fits in a few seconds of real time (TimeProvider.System). Without the
// watchdog the same scenario runs with a timeout far beyond the window we watch: in effect, no watchdog.
RunSupervisorOptions options = noWatchdog
    ? new() { RunTimeout = TimeSpan.FromHours(1), GracePeriod = TimeSpan.FromSeconds(2), MaxRunDuration = TimeSpan.FromHours(1) }
    : new() { RunTimeout = TimeSpan.FromSeconds(3), GracePeriod = TimeSpan.FromSeconds(2), MaxRunDuration = TimeSpan.FromMinutes(1) };

LoopbackHangingServer server = LoopbackHangingServer.Start(
    requestLine => timeline.Print($"provider: received \"{requestLine}\"; holding the connection open, never answering"));
var client = new BrokenProviderClient(server.Endpoint);
var registry = new ActiveRunRegistry(options, TimeProvider.System, timeline);
var policy = new HeartbeatQueuePolicy(registry, timeline.CreateLogger<HeartbeatQueuePolicy>());

var owedHeartbeatDelivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
var heartbeatsFlowAgain = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
TimeSpan owedHeartbeatAt = default;

// The recovery signal. The policy raises it once, the moment a session that dropped heartbeats is idle again
// (here: right after the force eviction), so the host fires the missed tick now instead of a tick later.
policy.HeartbeatOwed += (_, e) =>
{
    QueueDecision decision = policy.Resolve(new QueueRequest(e.SessionId, IsHeartbeat: true));
    if (decision.Action == QueueAction.RunNow)
    {
        owedHeartbeatAt = timeline.Elapsed;
        timeline.Print($"heartbeat owed ({e.DroppedHeartbeats} dropped) → heartbeat delivered ({decision.Reason})");
        owedHeartbeatDelivered.TrySetResult();
    }
    else
    {
        timeline.Print($"heartbeat owed, but the policy said {decision.Action} ({decision.Reason})");
    }
};

using var stopHeartbeats = new CancellationTokenSource();
Task heartbeats = RunHeartbeatsAsync(stopHeartbeats.Token);
Task? agentRun = null;
Task<string>? followUp = null;
TimeSpan followUpAnsweredAt = default;
int exitCode;
string verdict;
try
{
    timeline.Print($"provider listening on {server.Endpoint}: it accepts requests and never answers");
    timeline.Print(noWatchdog
        ? "--no-watchdog: run timeout 1 h, so in effect nothing will abort or evict the run"
        : $"watchdog: abort at the {options.RunTimeout.TotalSeconds:0} s deadline, force-evict {options.GracePeriod.TotalSeconds:0} s later if the provider has not settled");

    await Task.Delay(runStartDelay);
    TimeSpan runStartedAt = timeline.Elapsed;
    agentRun = ObserveRunAsync(registry.RunAsync(SessionId, CallProviderAsync));

    // The user writes again while the run hangs: the follow-up waits in the registry's queue (WhenBusy = Wait)
    // instead of failing, and runs the moment the session is free, so recovery does not lose it.
    await Task.Delay(TimeSpan.FromMilliseconds(500));
    timeline.Print($"user sends a follow-up; {SessionId} is busy, so it waits in the registry's queue (WhenBusy = Wait)");
    followUp = registry.RunAsync(
        SessionId,
        _ => { followUpAnsweredAt = timeline.Elapsed; timeline.Print("the queued follow-up runs: admitted as soon as the session was free"); return Task.FromResult("follow-up answered"); },
        new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(30) });
    TimeSpan bound = noWatchdog ? runStartedAt + noWatchdogWindow : recoveryBound;
    if (await RecoveredWithinAsync(bound - timeline.Elapsed) && followUp.IsCompletedSuccessfully && ShowPreemption())
    {
        PrintAbandonedRuns();
        exitCode = 0;
        verdict = $"VERDICT: recovered. {SessionId} is idle, the queued follow-up ran at {followUpAnsweredAt.TotalSeconds:0.00}s and the owed heartbeat was delivered at {owedHeartbeatAt.TotalSeconds:0.00}s (bound {recoveryBound.TotalSeconds:0} s), although the provider never answered; a background run yielded to a user turn. Exit 0.";
    }
    else if (noWatchdog)
    {
        PrintFailureMode(timeline.Elapsed - runStartedAt);
        exitCode = 2;
        verdict = "VERDICT: NOT recovered. This is expected with --no-watchdog: it shows the failure mode. Exit 2.";
    }
    else
    {
        timeline.Print($"not recovered within {bound.TotalSeconds:0} s of start: {WhyNotRecovered()}");
        exitCode = 1;
        verdict = "VERDICT: NOT recovered. Exit 1.";
    }
}
finally
{
    // Shut down in dependency order. The hung provider call itself is never awaited: it may never end.
    await stopHeartbeats.CancelAsync();
    await heartbeats;
    policy.Dispose();       // it observes the registry, so it goes first
    if (registry.ActiveCount > 0)
    {
        timeline.Print("shutting down: disposing the registry ends the run that is still active");
    }

    registry.Dispose();     // ends a run that is still active (the --no-watchdog case) with reason Aborted, and fails a waiting follow-up
    if (followUp is not null)
    {
        await ((Task)followUp).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    if (agentRun is not null)
    {
        // RunAsync itself completes once its run has left the registry: at once here.
        await agentRun.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    timeline.Dispose();     // no library lines after the verdict
    client.Dispose();       // closes its socket: the only thing that ends the hung read
    await server.DisposeAsync();
}

timeline.Print(verdict);
return exitCode;

// The host's heartbeat: every tick goes through the queue policy, which drops it while a run is active.
async Task RunHeartbeatsAsync(CancellationToken cancellationToken)
{
    using var timer = new PeriodicTimer(heartbeatInterval);
    int droppedInARow = 0;
    try
    {
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            QueueDecision decision = policy.Resolve(new QueueRequest(SessionId, IsHeartbeat: true));
            if (decision.Action == QueueAction.RunNow)
            {
                droppedInARow = 0;
                timeline.Print($"heartbeat delivered ({decision.Reason})");
                if (owedHeartbeatDelivered.Task.IsCompleted)
                {
                    heartbeatsFlowAgain.TrySetResult();
                }
            }
            else
            {
                timeline.Print($"heartbeat dropped ×{++droppedInARow} ({decision.Reason})");
            }
        }
    }
    catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
    {
        // Shutting down.
    }
}

// The agent run's provider call. RunAsync registers the run first, then calls this with the run's AbortToken.
Task<string> CallProviderAsync(CancellationToken abortToken)
{
    if (registry.TryGetRun(SessionId, out RunInfo? run))
    {
        timeline.Print($"run {run.RunId} started on {SessionId}: the agent calls the provider");
    }

    // Only to make the abort visible: the client stops looking at the token once the request is sent.
    abortToken.Register(() => timeline.Print("abort token cancelled, but the provider call ignores it and keeps waiting"));
    return client.CompleteAsync(abortToken);
}

// The agent's side of the run: RunAsync never outlives the watchdog, so this ends at deadline + grace at the latest.
async Task ObserveRunAsync(Task<string> call)
{
    try
    {
        string reply = await call;
        timeline.Print($"run completed: {reply}");
    }
    catch (RunEvictedException ex)
    {
        timeline.Print($"RunAsync threw RunEvictedException: {ex.Message}");
    }
    catch (Exception ex)
    {
        timeline.Print($"RunAsync ended with {ex.GetType().Name}: {ex.Message}");
    }
}

// Recovered = the run has left the registry, its owed heartbeat went out, and the regular ticks are delivered again.
async Task<bool> RecoveredWithinAsync(TimeSpan timeout)
{
    try
    {
        await Task.WhenAll(agentRun!, owedHeartbeatDelivered.Task, heartbeatsFlowAgain.Task)
            .WaitAsync(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        return !registry.IsActive(SessionId);
    }
    catch (TimeoutException)
    {
        return false;
    }
}

// Background work yields to the user: a heartbeat turn started as Background is preempted by a user turn on its session.
bool ShowPreemption()
{
    const string OtherSession = "session-2";
    RunHandle heartbeatTurn = registry.Start(OtherSession, new RunStartOptions { Background = true });
    timeline.Print($"run {heartbeatTurn.RunId} on {OtherSession}: a background heartbeat turn");
    using RunHandle userTurn = registry.Start(OtherSession);
    bool preempted = heartbeatTurn.Completion.IsCompletedSuccessfully && heartbeatTurn.Completion.Result == RunEndReason.Superseded && userTurn.IsCurrent;
    timeline.Print(preempted
        ? $"a user turn on {OtherSession} preempted it at once: run {heartbeatTurn.RunId} ended Superseded, run {userTurn.RunId} runs"
        : $"the user turn did not preempt the background run ({heartbeatTurn.Status})");
    heartbeatTurn.Dispose();
    return preempted;
}

void PrintAbandonedRuns()
{
    foreach (AbandonedRunInfo abandoned in registry.GetAbandonedRuns())
    {
        timeline.Print($"abandoned ledger: run {abandoned.RunId} of {abandoned.SessionId}; its provider call is still pending (a Task cannot be killed, so it is quarantined until it settles)");
    }
}

void PrintFailureMode(TimeSpan watched)
{
    string run = registry.TryGetRun(SessionId, out RunInfo? info)
        ? $"run {info.RunId} is {info.Status}, its deadline {(info.Deadline - TimeProvider.System.GetUtcNow()).TotalMinutes:0} min away"
        : "no run is registered (unexpected in this mode)";
    timeline.Print($"{watched.TotalSeconds:0.0} s after the run started: {SessionId} is still busy; {run}");
    timeline.Print($"{policy.GetDroppedHeartbeats(SessionId)} heartbeats dropped since then, none delivered, none owed: nothing recovers");
    timeline.Print("without the watchdog the session stays busy and every heartbeat is dropped, until the process restarts");
}

string WhyNotRecovered()
{
    if (registry.TryGetRun(SessionId, out RunInfo? info))
    {
        return $"{SessionId} is still busy: run {info.RunId} is {info.Status}; the watchdog did not evict it";
    }

    if (!owedHeartbeatDelivered.Task.IsCompleted)
    {
        return $"{SessionId} is idle, but no owed heartbeat was delivered";
    }

    if (followUp is { IsCompletedSuccessfully: false })
    {
        return "the queued follow-up did not run";
    }

    return agentRun!.IsCompleted ? "no regular heartbeat was delivered after the recovery (or the background run was not preempted)" : "RunAsync has not returned";
}

static void PrintUsage(TextWriter output) => output.WriteLine(
    """
    HungProviderRecovery: watch RunSupervisor recover a session whose model provider hangs.

    Usage: dotnet run --project samples/HungProviderRecovery [-- OPTIONS]

    Options:
      --no-watchdog  the same scenario with the watchdog in effect disabled (run timeout 1 h), watched
                     for 7 s after the run starts: the session stays busy, every heartbeat is dropped
      --verbose      also print the library's Debug and Information log lines
      -h, --help     print this help

    Exit codes:
      0   recovered: the session is idle and the owed heartbeat was delivered within 12 s of start
      1   not recovered (the last lines say why)
      2   --no-watchdog: not recovered, as expected in that mode
      64  unknown argument
    """);
