// MultiHostFailover: two gateway processes share sessions through a lease store on one Redis-compatible server. Host A
// runs a session whose provider hangs; host B is refused the session and drops its heartbeats; A is killed with SIGKILL;
// once A's lease runs out B is owed its heartbeat, runs it, and so takes the session over with a larger fencing token.
// Exit 0 when that happened within the bound (CI relies on it).
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using MultiHostFailover;
using RunSupervisor.Samples;

const string SessionId = "session-1";
TimeSpan heartbeatInterval = TimeSpan.FromMilliseconds(500);
TimeSpan killAfter = TimeSpan.FromSeconds(2);               // after A's run started
TimeSpan takeoverBound = TimeSpan.FromSeconds(10);          // after the kill; the lease arithmetic says about 2.5
TimeSpan startupBound = TimeSpan.FromSeconds(10);

if (args.Contains("--help") || args.Contains("-h"))
{
    PrintUsage(Console.Out);
    return 0;
}

string? redis = Option("--redis");
bool verbose = args.Contains("--verbose");
if (Option("--child") is { } childHost)
{
    return await GatewayHost.RunAsync(childHost, redis ?? throw new ArgumentException("--child needs --redis."), Option("--prefix") ?? "runsupervisor", verbose);
}

for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--redis" && i + 1 < args.Length)
    {
        i++;
    }
    else if (args[i] != "--verbose")
    {
        Console.Error.WriteLine($"Unknown argument: {args[i]}");
        PrintUsage(Console.Error);
        return 64;
    }
}

Console.OutputEncoding = Encoding.UTF8;
var timeline = new Timeline(verbose ? LogLevel.Debug : LogLevel.Warning);
var story = new Story();
EmbeddedGarnet? garnet = null;
HostProcess? a = null;
HostProcess? b = null;
using var stopHeartbeats = new CancellationTokenSource();
Task heartbeats = Task.CompletedTask;
int exitCode;
string verdict;
try
{
    if (redis is null)
    {
        garnet = EmbeddedGarnet.Start();
        redis = "127.0.0.1:" + garnet.Port.ToString(CultureInfo.InvariantCulture);
        timeline.Print($"server: embedded Garnet on {redis} (--redis host:port uses a real one)");
    }
    else
    {
        timeline.Print($"server: {redis}");
    }

    timeline.Print($"leases: TTL {GatewayHost.LeaseTtl.TotalSeconds:0.#} s, renewed every {GatewayHost.RenewInterval.TotalSeconds:0.#} s; a host trusts its lease {(GatewayHost.LeaseTtl - GatewayHost.LeaseSafetyMargin).TotalSeconds:0.#} s after its last confirmed renew; a host that dropped heartbeats polls the session every {GatewayHost.RemoteIdlePollInterval.TotalSeconds:0.#} s");

    // Keys and channels of this run only, so a real server's other data (or an earlier run) stays out of the story.
    string prefix = "failover-" + Guid.NewGuid().ToString("N")[..8];
    a = HostProcess.Start("A", redis, prefix, verbose);
    b = HostProcess.Start("B", redis, prefix, verbose);
    a.LineReceived += OnLine;
    b.LineReceived += OnLine;
    await story.Ready.WaitAsync(startupBound);

    a.Send($"start {SessionId}");
    await story.FirstStarted.Task.WaitAsync(startupBound);
    b.Send($"start {SessionId}");
    await story.Refused.Task.WaitAsync(startupBound);
    heartbeats = RunHeartbeatsAsync(b, stopHeartbeats.Token);

    await Task.Delay(killAfter);
    a.Kill();
    story.KilledAt = timeline.Elapsed;
    timeline.Print($"host A killed (SIGKILL) with its run in flight: no release, no goodbye; its lease lives on until its TTL runs out");

    TimeSpan left = takeoverBound - (timeline.Elapsed - story.KilledAt);
    bool tookOver = await Within(story.TakenOver.Task, left);
    bool flowsAgain = tookOver && await Within(story.FlowsAgain.Task, TimeSpan.FromSeconds(3));
    if (tookOver && flowsAgain && story.TakeoverToken > story.FirstToken && story.DroppedOnB > 0)
    {
        exitCode = 0;
        verdict = $"VERDICT: recovered. Host B dropped {story.DroppedOnB} heartbeats while host A held {SessionId}, then took the session over {(story.TakeoverAt - story.KilledAt).TotalSeconds:0.00} s after A was killed (bound {takeoverBound.TotalSeconds:0} s) with fencing token {story.TakeoverToken} > {story.FirstToken}, and its owed heartbeat was delivered. Exit 0.";
    }
    else
    {
        exitCode = 1;
        verdict = $"VERDICT: NOT recovered within {takeoverBound.TotalSeconds:0} s of the kill: {story.WhyNot()}. Exit 1.";
    }
}
catch (TimeoutException)
{
    exitCode = 1;
    verdict = $"VERDICT: NOT recovered: the hosts did not get that far ({story.WhyNot()}). Exit 1.";
}
finally
{
    await stopHeartbeats.CancelAsync();
    await heartbeats;
    a?.Dispose();
    b?.Dispose();
    garnet?.Dispose();
}

timeline.Print(verdict);
timeline.Dispose();
return exitCode;

void OnLine(HostProcess host, string line)
{
    string[] w = line.Split(' ', 4);
    string who = "host " + host.HostId;
    switch (w[0])
    {
        case "READY":
            timeline.Print($"{who} (pid {host.ProcessId}) is up: its own registry, heartbeat policy and connection");
            story.HostReady();
            break;
        case "STARTED":
            timeline.Print($"{who}: run started on {w[1]}, fencing token {w[2]}; its provider hangs and never answers");
            story.FirstToken = long.Parse(w[2], CultureInfo.InvariantCulture);
            story.FirstStarted.TrySetResult();
            break;
        case "BUSY":
            timeline.Print($"{who}: start refused: {w[1]} is running on host {w[2]} (fencing token {w[3]})");
            story.Refused.TrySetResult();
            break;
        case "DROPPED":
            timeline.Print($"{who}: heartbeat dropped ×{w[2]} ({w[3]})");
            story.DroppedOnB++;
            break;
        case "DELIVERED":
            timeline.Print($"{who}: heartbeat delivered ({string.Join(' ', w[2..])})");
            if (story.TakenOver.Task.IsCompleted)
            {
                story.FlowsAgain.TrySetResult();
            }

            break;
        case "OWED":
            timeline.Print($"{who}: {w[1]} is idle cluster-wide (A's lease expired) → heartbeat owed ({w[2]} dropped)");
            break;
        case "OWED-RUN":
            story.TakeoverAt = timeline.Elapsed;
            story.TakeoverToken = long.Parse(w[2], CultureInfo.InvariantCulture);
            timeline.Print($"{who}: owed heartbeat delivered as a run on {w[1]}, fencing token {w[2]} (> A's {story.FirstToken}): the session is taken over, {(story.TakeoverAt - story.KilledAt).TotalSeconds:0.00} s after the kill");
            story.TakenOver.TrySetResult();
            break;
        case "OWED-BUSY":
            timeline.Print($"{who}: owed heartbeat refused: {w[1]} is held by host {w[2]}");
            break;
        case "ENDED":
            timeline.Print($"{who}: run on {w[1]} ended {w[2]} (fencing token {w[3]})");
            break;
        case "UNAVAILABLE":
            timeline.Print($"{who}: the lease store is unavailable; the start failed closed");
            break;
        default:
            timeline.Print($"{who}:   {(w[0] == "LOG" ? line[4..] : line)}");
            break;
    }
}

async Task RunHeartbeatsAsync(HostProcess host, CancellationToken cancellationToken)
{
    using var ticker = new PeriodicTimer(heartbeatInterval);
    try
    {
        do
        {
            host.Send($"heartbeat {SessionId}");
        }
        while (await ticker.WaitForNextTickAsync(cancellationToken));
    }
    catch (OperationCanceledException)
    {
        // The story is over.
    }
}

static async Task<bool> Within(Task task, TimeSpan timeout)
{
    try
    {
        await task.WaitAsync(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        return true;
    }
    catch (TimeoutException)
    {
        return false;
    }
}

string? Option(string name)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
}

static void PrintUsage(TextWriter writer) => writer.WriteLine("""
    Usage: MultiHostFailover [--redis host:port] [--verbose]

    Two gateway processes share session-1 through a lease store; the one running it is killed mid-run and the other
    takes the session over once the lease expires, with a larger fencing token.

      --redis host:port   a Redis server to use instead of the embedded Garnet (loopback only in CI)
      --verbose           also the library's Debug and Information log lines from both hosts
    Exit codes: 0 recovered within the bound, 1 not recovered, 64 unknown argument.
    """);

/// <summary>What the hosts reported so far: the verdict's evidence.</summary>
internal sealed class Story
{
    private readonly TaskCompletionSource _bothReady = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _ready;

    public TaskCompletionSource FirstStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Refused { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource TakenOver { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource FlowsAgain { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Ready => _bothReady.Task;

    public long FirstToken { get; set; }

    public long TakeoverToken { get; set; }

    public int DroppedOnB { get; set; }

    public TimeSpan KilledAt { get; set; }

    public TimeSpan TakeoverAt { get; set; }

    public void HostReady()
    {
        if (Interlocked.Increment(ref _ready) == 2)
        {
            _bothReady.TrySetResult();
        }
    }

    public string WhyNot() =>
        !FirstStarted.Task.IsCompleted ? "host A never started the run"
        : !Refused.Task.IsCompleted ? "host B was never refused"
        : DroppedOnB == 0 ? "host B dropped no heartbeat"
        : !TakenOver.Task.IsCompleted ? "host B never took the session over"
        : TakeoverToken <= FirstToken ? $"the takeover's fencing token {TakeoverToken} is not larger than {FirstToken}"
        : "heartbeats did not flow again after the takeover";
}
