using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.LoopbackServers;

/// <summary>
/// <c>redis-server</c> as a child process on a 127.0.0.1 port, without persistence (no RDB snapshots, no append-only
/// file), killed by its own handle rather than by name, so no other redis-server on the machine is touched.
/// </summary>
public sealed class RedisServerChild : IDisposable
{
    private readonly Process _process;

    private RedisServerChild(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    /// <summary>Gets the server's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>Gets the server's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Gets the path of the first <c>redis-server</c> on PATH.</summary>
    /// <returns>The path, or <see langword="null"/> when there is none.</returns>
    public static string? FindOnPath()
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Gets the command line the server is started with.</summary>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <returns>The arguments.</returns>
    public static string[] Arguments(int port) =>
        ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--daemonize", "no"];

    /// <summary>Starts the server on <paramref name="port"/> and waits until it accepts connections.</summary>
    /// <param name="executable">The <c>redis-server</c> binary.</param>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <param name="listenTimeout">How long it may take to accept a connection.</param>
    /// <returns>The running server; disposing it kills it.</returns>
    /// <exception cref="InvalidOperationException">It did not start, or exited at once (the port was taken).</exception>
    public static async Task<RedisServerChild> StartAsync(string executable, int port, TimeSpan listenTimeout)
    {
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in Arguments(port))
        {
            info.ArgumentList.Add(argument);
        }

        Process process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");

        // Its output is read and dropped, so a full pipe can never block the server.
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await LoopbackPort.WaitUntilListeningAsync(port, listenTimeout, () => process.HasExited);
            if (process.HasExited)
            {
                // Something else answered on the port while this one failed to bind it.
                throw new InvalidOperationException($"redis-server exited at once (port {port} taken?).");
            }

            return new RedisServerChild(process, port);
        }
        catch
        {
            Kill(process);
            throw;
        }
    }

    /// <summary>Kills the server abruptly (clients see their connections drop) and waits up to 5 s for it to exit.</summary>
    public void Dispose() => Kill(_process);

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
            // Already gone (or already disposed, when a second Dispose races the first).
        }
        finally
        {
            process.Dispose();
        }
    }
}
