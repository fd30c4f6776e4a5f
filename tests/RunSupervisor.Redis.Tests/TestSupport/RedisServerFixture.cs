using System.Diagnostics;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// <c>redis-server</c> from PATH, started as a child process on a free loopback port without persistence and killed by
/// its own handle. When the binary is missing the tests that use it skip (<see cref="RedisServerFactAttribute"/>), except
/// in CI (<c>CI=true</c>), where they fail.
/// </summary>
public sealed class RedisServerFixture : IRedisTestServer, IAsyncLifetime
{
    private readonly Lock _lock = new();
    private Process? _process;

    public int Port { get; private set; }

    public string Name => "redis-server";

    /// <summary>
    /// Gets the redis-server binary: <c>RUNSUPERVISOR_TEST_REDIS_SERVER</c> when set (a path, or <c>none</c> to act as
    /// if it were missing, which is how the skip and the CI failure are checked), else the first on PATH.
    /// </summary>
    public static string? ExecutablePath { get; } = Environment.GetEnvironmentVariable("RUNSUPERVISOR_TEST_REDIS_SERVER") switch
    {
        null or "" => Find("redis-server"),
        "none" => null,
        string path => File.Exists(path) ? path : null,
    };

    public async Task InitializeAsync()
    {
        if (ExecutablePath is null)
        {
            if (!RedisServerFactAttribute.IsCi)
            {
                return;
            }

            throw new InvalidOperationException("redis-server is not on PATH and CI=true: install it (apt-get install -y redis-server); .ci/run does.");
        }

        for (int attempt = 1; ; attempt++)
        {
            Port = FreePort.Next();
            try
            {
                await StartAsync();
                return;
            }
            catch (Exception) when (attempt < 5)
            {
                await StopAsync();
            }
        }
    }

    public async Task StartAsync()
    {
        var info = new ProcessStartInfo(ExecutablePath ?? throw new InvalidOperationException("redis-server is not on PATH."))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--daemonize", "no" })
        {
            info.ArgumentList.Add(argument);
        }

        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
            process.OutputDataReceived += static (_, _) => { };
            process.ErrorDataReceived += static (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            lock (_lock)
            {
                _process = process;
            }

            try
            {
                await FreePort.WaitUntilListeningAsync(Port, TimeSpan.FromSeconds(5)).WaitAsync(TimeSpan.FromSeconds(6));
                if (!process.HasExited)
                {
                    return;
                }
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
            }

            // It exited (the port was not free yet after a restart) or never listened: try again briefly.
            await StopAsync();
            if (DateTime.UtcNow >= deadline)
            {
                throw new InvalidOperationException($"redis-server did not listen on 127.0.0.1:{Port}.");
            }

            await Task.Delay(50);
        }
    }

    public async Task StopAsync()
    {
        Process? process;
        lock (_lock)
        {
            process = _process;
            _process = null;
        }

        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
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

    public Task DisposeAsync() => StopAsync();

    private static string? Find(string name)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
