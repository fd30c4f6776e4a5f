// A gateway process for the multi-process tests: one ActiveRunRegistry on a RedisRunLeaseStore, driven by a line
// protocol on stdin and reporting on stdout, so a test can run two of them against one server and kill one for real.
//
// Arguments: --redis 127.0.0.1:PORT --host ID [--prefix P] [--ttl MS] [--renew MS] [--margin MS] [--poll MS] [--acquire MS]
//
// Commands (one per line)          Answers and events (one per line)
//   start <session> hang|quick       STARTED <session> <token> | BUSY <session> <ownerHost> <token> | UNAVAILABLE <session>
//   stop <session>                   STOPPED <session> (the held run is released)
//   heartbeat <session>              DROPPED <session> <reason> | RUNNOW <session> <reason>
//   owner <session>                  OWNER <session> <host> <token> | OWNER <session> none
//   exit                             (the process exits 0)
// Events: READY <host> once connected, ENDED <session> <reason> <token> <detail>, OWED <session> <dropped>,
// ERROR <command> <exception type>: <message>. End of stdin ends the process too, so a test that dies leaves no host.
using System.Collections.Concurrent;
using System.Globalization;
using RunSupervisor;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

Dictionary<string, string> settings = ParseArguments(args);
string redis = settings.GetValueOrDefault("redis") ?? throw new ArgumentException("--redis host:port is required.");
string hostId = settings.GetValueOrDefault("host") ?? throw new ArgumentException("--host ID is required.");
string prefix = settings.GetValueOrDefault("prefix") ?? "runsupervisor";
TimeSpan ttl = Milliseconds(settings, "ttl", 2000);
TimeSpan acquire = Milliseconds(settings, "acquire", 1000);

var output = new LineWriter();
var options = new RunSupervisorOptions
{
    // The runs here hang on purpose: only the lease may end them, never the deadline.
    RunTimeout = TimeSpan.FromMinutes(5),
    MaxRunDuration = TimeSpan.FromMinutes(10),
    GracePeriod = TimeSpan.FromSeconds(5),
};
options.Lease.HostId = hostId;
options.Lease.LeaseTtl = ttl;
options.Lease.RenewInterval = Milliseconds(settings, "renew", 500);
options.Lease.LeaseSafetyMargin = Milliseconds(settings, "margin", 300);
options.Lease.RemoteIdlePollInterval = Milliseconds(settings, "poll", 500);
options.Lease.AcquireTimeout = acquire;

var configuration = ConfigurationOptions.Parse(redis);
configuration.AbortOnConnectFail = false;
configuration.ConnectTimeout = 1000;
configuration.AsyncTimeout = 3000;
configuration.SyncTimeout = 3000;

// A server that is restarted mid-run must be found again within a fraction of the lease's time to live.
configuration.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
configuration.ReconnectRetryPolicy = new LinearRetry(100);

await using ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
await using var store = new RedisRunLeaseStore(multiplexer, new RedisRunLeaseStoreOptions { KeyPrefix = prefix, ChannelPrefix = prefix, OperationTimeout = acquire });
using var registry = new ActiveRunRegistry(options, TimeProvider.System, loggerFactory: null, leaseStore: store);
using var policy = new HeartbeatQueuePolicy(registry);
var held = new ConcurrentDictionary<string, RunHandle>(StringComparer.Ordinal);

registry.RunEnded += (_, e) => output.Write($"ENDED {e.SessionId} {e.Reason} {e.FencingToken} {e.Detail}");
policy.HeartbeatOwed += (_, e) => output.Write($"OWED {e.SessionId} {e.DroppedHeartbeats}");

output.Write($"READY {hostId}");
while (await Console.In.ReadLineAsync() is { } line)
{
    string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    if (words.Length == 0)
    {
        continue;
    }

    if (words[0] == "exit")
    {
        break;
    }

    try
    {
        await HandleAsync(words);
    }
#pragma warning disable CA1031 // The test reads every failure as a line; the host goes on serving.
    catch (Exception ex)
#pragma warning restore CA1031
    {
        output.Write($"ERROR {words[0]} {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
    }
}

foreach (RunHandle handle in held.Values)
{
    await handle.DisposeAsync();
}

return 0;

async Task HandleAsync(string[] words)
{
    string session = words.Length > 1 ? words[1] : throw new ArgumentException($"'{words[0]}' needs a session id.");
    switch (words[0])
    {
        case "start":
            RunHandle handle;
            try
            {
                handle = await registry.StartAsync(session);
            }
            catch (SessionBusyException busy)
            {
                output.Write($"BUSY {session} {busy.OwnerHostId ?? hostId} {busy.FencingToken}");
                return;
            }
            catch (RunLeaseUnavailableException)
            {
                output.Write($"UNAVAILABLE {session}");
                return;
            }

            output.Write($"STARTED {session} {handle.FencingToken}");
            if (words.Length > 2 && words[2] == "hang")
            {
                // The provider that never answers: the run is held until the lease, a stop or the process ends it.
                held[session] = handle;
            }
            else
            {
                await handle.DisposeAsync();
            }

            break;
        case "stop":
            if (held.TryRemove(session, out RunHandle? stopped))
            {
                await stopped.DisposeAsync();
            }

            output.Write($"STOPPED {session}");
            break;
        case "heartbeat":
            QueueDecision decision = await policy.ResolveAsync(new QueueRequest(session, IsHeartbeat: true));
            output.Write(decision.Action == QueueAction.Drop ? $"DROPPED {session} {decision.Reason}" : $"RUNNOW {session} {decision.Reason}");
            break;
        case "owner":
            RunLeaseInfo? owner = await registry.GetSessionOwnerAsync(session);
            output.Write(owner is null ? $"OWNER {session} none" : $"OWNER {session} {owner.HostId} {owner.FencingToken}");
            break;
        default:
            throw new ArgumentException($"Unknown command '{words[0]}'.");
    }
}

static Dictionary<string, string> ParseArguments(string[] arguments)
{
    var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
    for (int i = 0; i + 1 < arguments.Length; i += 2)
    {
        if (!arguments[i].StartsWith("--", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Expected an option, got '{arguments[i]}'.");
        }

        parsed[arguments[i][2..]] = arguments[i + 1];
    }

    return parsed;
}

static TimeSpan Milliseconds(Dictionary<string, string> settings, string name, int fallback)
    => TimeSpan.FromMilliseconds(settings.TryGetValue(name, out string? value) ? int.Parse(value, CultureInfo.InvariantCulture) : fallback);

/// <summary>Whole lines only: events come from the watchdog, the store's delivery thread and the command loop at once.</summary>
internal sealed class LineWriter
{
    private readonly Lock _lock = new();

    public void Write(string line)
    {
        lock (_lock)
        {
            Console.Out.WriteLine(line);
            Console.Out.Flush();
        }
    }
}
