using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Garnet;
using StackExchange.Redis;

namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>A Redis-compatible server on a free loopback port that a benchmark started and owns.</summary>
public interface ILeaseServer : IDisposable
{
    /// <summary>Gets the server's name: <see cref="LeaseServers.Garnet"/> or <see cref="LeaseServers.RedisServer"/>.</summary>
    string Name { get; }

    /// <summary>Gets the server's port on 127.0.0.1.</summary>
    int Port { get; }

    /// <summary>Gets the server's own process id, or <see langword="null"/> when it runs inside this process (Garnet).</summary>
    int? ProcessId { get; }
}

/// <summary>
/// Starts the servers the Redis lease store benchmarks run against, on loopback: Microsoft Garnet inside this process
/// (always available), and <c>redis-server</c> from PATH as a child process without persistence. The same approach as
/// <c>tests/RunSupervisor.Redis.Tests/TestSupport</c>, without the test framework.
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
    public static string? RedisServerPath { get; } = FindOnPath("redis-server");

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
        for (int attempt = 1; ; attempt++)
        {
            int port = FreePort();
            try
            {
                return name switch
                {
                    Garnet => GarnetInProcess.Start(port),
                    RedisServer => RedisServerProcess.Start(port),
                    _ => throw new ArgumentException($"Unknown server '{name}': {Garnet} or {RedisServer}.", nameof(name)),
                };
            }
            catch (Exception ex) when (attempt < 5 && ex is not ArgumentException)
            {
                // Someone took the port between the probe and the bind: try another.
            }
        }
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static void WaitUntilListening(int port, TimeSpan timeout, Func<bool>? gaveUp = null)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline && gaveUp?.Invoke() != true)
            {
                Thread.Sleep(20);
            }
        }
    }

    private static string? FindOnPath(string file)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, file);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Garnet in this process. Lua on, in transaction mode: without it Garnet runs scripts without isolation.</summary>
    private sealed class GarnetInProcess : ILeaseServer
    {
        private readonly GarnetServer _server;

        private GarnetInProcess(GarnetServer server, int port)
        {
            _server = server;
            Port = port;
        }

        public string Name => Garnet;

        public int Port { get; }

        public int? ProcessId => null;

        public static GarnetInProcess Start(int port)
        {
            // The command-line form, as the Redis tests use it: it fills in what the options object alone leaves unset.
            var server = new GarnetServer(
            [
                "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--lua", "true", "--lua-transaction-mode", "true",
                "-q", "--logger-level", "None", "--index", "64m", "--memory", "256m", "--page", "1m",
            ]);
            try
            {
                server.Start();
                WaitUntilListening(port, TimeSpan.FromSeconds(10));
                return new GarnetInProcess(server, port);
            }
            catch
            {
                server.Dispose();
                throw;
            }
        }

        public void Dispose() => _server.Dispose();
    }

    /// <summary><c>redis-server</c> as a child process: no RDB snapshots, no append-only file, killed by its own handle.</summary>
    private sealed class RedisServerProcess : ILeaseServer
    {
        private readonly Process _process;

        private RedisServerProcess(Process process, int port)
        {
            _process = process;
            Port = port;

            // A benchmark process that ends without its cleanup must not leave the server behind.
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }

        public string Name => RedisServer;

        public int Port { get; }

        public int? ProcessId => _process.Id;

        public static RedisServerProcess Start(int port)
        {
            var info = new ProcessStartInfo(RedisServerPath ?? throw new InvalidOperationException("redis-server is not on PATH: install it (apt-get install -y redis-server) or use garnet."))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string argument in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--daemonize", "no" })
            {
                info.ArgumentList.Add(argument);
            }

            Process process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
            process.OutputDataReceived += static (_, _) => { };
            process.ErrorDataReceived += static (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                WaitUntilListening(port, TimeSpan.FromSeconds(10), () => process.HasExited);
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"redis-server exited at once (port {port} taken?).");
                }

                return new RedisServerProcess(process, port);
            }
            catch
            {
                Kill(process);
                throw;
            }
        }

        public void Dispose()
        {
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            Kill(_process);
        }

        private static void Kill(Process process)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }

                process.WaitForExit(5_000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
            finally
            {
                process.Dispose();
            }
        }

        private void OnProcessExit(object? sender, EventArgs e) => Kill(_process);
    }
}
