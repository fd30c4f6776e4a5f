using System.Globalization;
using RunSupervisor.LoopbackServers;
using StackExchange.Redis;

namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>
/// Starts the servers the Redis lease store benchmarks run against, on loopback: Microsoft Garnet inside this process
/// (always available), and <c>redis-server</c> from PATH as a child process without persistence. The same approach as
/// <c>tests/RunSupervisor.Redis.Tests</c>, from the same code (<c>tests/Shared/LoopbackServers</c>), without the test
/// framework.
/// </summary>
public static class LeaseServers
{
    /// <summary>The name of the in-process Garnet server.</summary>
    public const string Garnet = "garnet";

    /// <summary>The name of the <c>redis-server</c> child process.</summary>
    public const string RedisServer = "redis-server";

    /// <summary>
    /// The environment variable that picks the servers, comma-separated (<c>garnet</c>, <c>redis-server</c>); unset:
    /// Garnet, and <c>redis-server</c> too when it is on PATH.
    /// </summary>
    public const string ServersVariable = "RUNSUPERVISOR_BENCH_SERVERS";

    /// <summary>Gets the path of <c>redis-server</c> on PATH, or <see langword="null"/>.</summary>
    public static string? RedisServerPath { get; } = RedisServerChild.FindOnPath();

    /// <summary>Gets the servers to benchmark against: <see cref="ServersVariable"/>, or every one available here.</summary>
    /// <returns>The server names.</returns>
    public static IEnumerable<string> Available()
    {
        string? chosen = Environment.GetEnvironmentVariable(ServersVariable);
        if (!string.IsNullOrWhiteSpace(chosen))
        {
            return chosen.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }

        return RedisServerPath is null ? [Garnet] : [Garnet, RedisServer];
    }

    /// <summary>Starts a server on a free loopback port and waits until it accepts connections.</summary>
    /// <param name="name"><see cref="Garnet"/> or <see cref="RedisServer"/>.</param>
    /// <returns>The running server; disposing it stops it.</returns>
    /// <exception cref="ArgumentException">The name is neither.</exception>
    /// <exception cref="InvalidOperationException">The server could not be started.</exception>
    public static ILeaseServer Start(string name)
    {
        Func<int, Task<ILeaseServer>> start = name switch
        {
            Garnet => GarnetInProcess.StartAsync,
            RedisServer => RedisServerProcess.StartAsync,
            _ => throw new ArgumentException($"Unknown server '{name}': {Garnet} or {RedisServer}.", nameof(name)),
        };

        // The benchmarks' setup is synchronous, and runs with no synchronization context to deadlock on.
        return LoopbackPort.StartOnFreePortAsync(start).GetAwaiter().GetResult();
    }

    /// <summary>A connection to <paramref name="server"/> as a host would open one (one multiplexer, RESP defaults).</summary>
    /// <param name="server">The server.</param>
    /// <returns>The connection.</returns>
    public static ConnectionMultiplexer Connect(ILeaseServer server)
    {
        ArgumentNullException.ThrowIfNull(server);
        var options = ConfigurationOptions.Parse(string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{server.Port}"));
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 5000;
        options.AsyncTimeout = 10_000;
        options.SyncTimeout = 10_000;
        return ConnectionMultiplexer.Connect(options);
    }

    /// <summary>
    /// Reads the CPU time (user + system, all threads) a process has used so far from <c>/proc/&lt;pid&gt;/stat</c>.
    /// Its resolution is one clock tick (10 ms: <c>USER_HZ</c> is 100 on Linux).
    /// </summary>
    /// <param name="processId">The process.</param>
    /// <returns>The CPU time.</returns>
    public static TimeSpan ProcessCpu(int processId)
    {
        // Fields 14 and 15 (utime, stime), counted after the command name, which is in parentheses and may hold spaces.
        string stat = File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{processId}/stat"));
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        const long UserHz = 100;
        return TimeSpan.FromTicks(ticks * (TimeSpan.TicksPerSecond / UserHz));
    }

    /// <summary>Garnet in this process, with room for the millions of keys a benchmark writes.</summary>
    private sealed class GarnetInProcess(LoopbackGarnet server) : ILeaseServer
    {
        private static readonly GarnetSizes Sizes = new(Index: "64m", Memory: "256m", Page: "1m");

        public string Name => Garnet;

        public int Port => server.Port;

        public int? ProcessId => null;

        public static async Task<ILeaseServer> StartAsync(int port) =>
            new GarnetInProcess(await LoopbackGarnet.StartAsync(port, Sizes, TimeSpan.FromSeconds(10)));

        public void Dispose() => server.Dispose();
    }

    /// <summary><c>redis-server</c> as a child process, killed when the benchmark process exits too.</summary>
    private sealed class RedisServerProcess : ILeaseServer
    {
        private readonly RedisServerChild _server;

        private RedisServerProcess(RedisServerChild server)
        {
            _server = server;

            // A benchmark process that ends without its cleanup must not leave the server behind.
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }

        public string Name => RedisServer;

        public int Port => _server.Port;

        public int? ProcessId => _server.ProcessId;

        public static async Task<ILeaseServer> StartAsync(int port)
        {
            string executable = RedisServerPath ?? throw new InvalidOperationException("redis-server is not on PATH: install it (apt-get install -y redis-server) or use garnet.");
            return new RedisServerProcess(await RedisServerChild.StartAsync(executable, port, TimeSpan.FromSeconds(10)));
        }

        public void Dispose()
        {
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            _server.Dispose();
        }

        private void OnProcessExit(object? sender, EventArgs e) => _server.Dispose();
    }
}
