using System.Globalization;
using Microsoft.Extensions.Logging;
using RunSupervisor;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

namespace MultiHostFailover;

/// <summary>
/// One gateway process (the sample's child mode): its own registry, heartbeat policy and connection to the shared
/// server, driven by the parent over stdin and reporting on stdout, one event per line.
/// </summary>
/// <remarks>
/// Commands: <c>start &lt;session&gt;</c> (a run whose provider never answers), <c>heartbeat &lt;session&gt;</c>,
/// <c>exit</c>. Events: <c>READY</c>, <c>STARTED s token</c>, <c>BUSY s owner token</c>, <c>UNAVAILABLE s</c>,
/// <c>DROPPED s n reason</c>, <c>DELIVERED s reason</c>, <c>OWED s n</c>, <c>OWED-RUN s token</c> (the owed heartbeat ran
/// as a run of this host), <c>OWED-BUSY s owner</c>, <c>ENDED s reason token</c>, <c>LOG line</c>. The end of stdin
/// ends the process, so a parent that dies takes its hosts with it.
/// </remarks>
internal static class GatewayHost
{
    public static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan RenewInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan LeaseSafetyMargin = TimeSpan.FromMilliseconds(300);
    public static readonly TimeSpan RemoteIdlePollInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan AcquireTimeout = TimeSpan.FromSeconds(1);

    private static readonly Lock OutputLock = new();

    public static async Task<int> RunAsync(string hostId, string redis, string prefix, bool verbose)
    {
        var options = new RunSupervisorOptions
        {
            // The provider hangs on purpose; what this sample shows is the lease, so the deadline stays out of the way.
            RunTimeout = TimeSpan.FromMinutes(5),
            MaxRunDuration = TimeSpan.FromMinutes(10),
        };
        options.Lease.HostId = hostId;
        options.Lease.LeaseTtl = LeaseTtl;
        options.Lease.RenewInterval = RenewInterval;
        options.Lease.LeaseSafetyMargin = LeaseSafetyMargin;
        options.Lease.RemoteIdlePollInterval = RemoteIdlePollInterval;
        options.Lease.AcquireTimeout = AcquireTimeout;

        var configuration = ConfigurationOptions.Parse(redis);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 2000;

        using var logs = new ProtocolLoggerFactory(verbose ? LogLevel.Debug : LogLevel.Warning);
        await using ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        await using var store = new RedisRunLeaseStore(multiplexer, new RedisRunLeaseStoreOptions { KeyPrefix = prefix, ChannelPrefix = prefix, OperationTimeout = AcquireTimeout }, logs);
        await using var registry = new ActiveRunRegistry(options, TimeProvider.System, logs, store);
        using var policy = new HeartbeatQueuePolicy(registry, logs.CreateLogger<HeartbeatQueuePolicy>());
        var held = new List<RunHandle>();

        registry.RunEnded += (_, e) => Write($"ENDED {e.SessionId} {e.Reason} {e.FencingToken}");

        // The owed heartbeat is the host's cue: the session is idle cluster-wide, so the missed tick runs now, as a run
        // of this host, which takes the session's lease with a larger fencing token.
        policy.HeartbeatOwed += (_, e) =>
        {
            Write($"OWED {e.SessionId} {e.DroppedHeartbeats}");
            _ = DeliverOwedAsync(registry, e.SessionId);
        };

        Write("READY");
        while (await Console.In.ReadLineAsync() is { } line)
        {
            string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words is ["exit"])
            {
                break;
            }

            if (words is not [string command, string session])
            {
                Write($"LOG unknown command '{line}'");
                continue;
            }

            try
            {
                switch (command)
                {
                    case "start":
                        RunHandle run = await registry.StartAsync(session);
                        held.Add(run);
                        Write($"STARTED {session} {run.FencingToken}");
                        break;
                    case "heartbeat":
                        QueueDecision decision = await policy.ResolveAsync(new QueueRequest(session, IsHeartbeat: true));
                        Write(decision.Action == QueueAction.Drop
                            ? $"DROPPED {session} {policy.GetDroppedHeartbeats(session)} {decision.Reason}"
                            : $"DELIVERED {session} {decision.Reason}");
                        break;
                    default:
                        Write($"LOG unknown command '{line}'");
                        break;
                }
            }
            catch (SessionBusyException busy)
            {
                Write($"BUSY {session} {busy.OwnerHostId ?? hostId} {busy.FencingToken}");
            }
            catch (RunLeaseUnavailableException)
            {
                Write($"UNAVAILABLE {session}");
            }
        }

        foreach (RunHandle run in held)
        {
            await run.DisposeAsync();
        }

        return 0;
    }

    private static async Task DeliverOwedAsync(ActiveRunRegistry registry, string sessionId)
    {
        try
        {
            // The heartbeat turn itself: short, and it gives the session back when done.
            await using RunHandle run = await registry.StartAsync(sessionId);
            Write($"OWED-RUN {sessionId} {run.FencingToken}");
            await Task.Delay(TimeSpan.FromMilliseconds(100), run.AbortToken);
        }
        catch (SessionBusyException busy)
        {
            Write($"OWED-BUSY {sessionId} {busy.OwnerHostId}");
        }
        catch (Exception e) when (e is RunLeaseUnavailableException or OperationCanceledException)
        {
            Write($"LOG the owed heartbeat did not run: {e.GetType().Name}: {e.Message}");
        }
    }

    private static void Write(string line)
    {
        lock (OutputLock)
        {
            Console.Out.WriteLine(line);
            Console.Out.Flush();
        }
    }

    /// <summary>The library's log lines, sent to the parent as <c>LOG</c> lines in the shared timeline's format.</summary>
    private sealed class ProtocolLoggerFactory(LogLevel minimumLevel) : ILoggerFactory, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider) =>
            throw new NotSupportedException("The parent's timeline prints every log line; a child takes no other providers.");

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= minimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string level = logLevel switch
            {
                LogLevel.Trace => "trce",
                LogLevel.Debug => "dbug",
                LogLevel.Information => "info",
                LogLevel.Warning => "warn",
                LogLevel.Error => "fail",
                _ => "crit",
            };
            Write($"LOG {level} {eventId.Name ?? eventId.Id.ToString(CultureInfo.InvariantCulture)}: {formatter(state, exception).ReplaceLineEndings(" ")}");
        }

        public void Dispose()
        {
        }
    }
}
