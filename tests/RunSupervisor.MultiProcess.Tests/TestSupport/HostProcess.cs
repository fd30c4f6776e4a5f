using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace RunSupervisor.MultiProcess.Tests.TestSupport;

/// <summary>
/// One gateway process (<c>RunSupervisor.TestHost</c>) with its own registry and connection, driven over its standard
/// input and read line by line from its standard output, each line stamped on arrival. Disposal always ends the process:
/// politely first, then by kill, so a failing test leaves no host behind (the host also exits when its stdin closes).
/// </summary>
internal sealed class HostProcess : IAsyncDisposable
{
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly ITestOutputHelper _output;
    private readonly List<HostLine> _lines = [];
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _arrived = new(0);

    private HostProcess(string hostId, Process process, ITestOutputHelper output)
    {
        HostId = hostId;
        _process = process;
        _output = output;
    }

    public string HostId { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Gets the host's dll: built before this project (a project reference that is not referenced), found through the path the build compiled in.</summary>
    public static string DllPath { get; } = FindDll();

    /// <summary>Starts a host on the server's port and waits for its <c>READY</c> line.</summary>
    public static async Task<HostProcess> StartAsync(string hostId, int port, string prefix, ITestOutputHelper output)
    {
        var info = new ProcessStartInfo(DotnetPath())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(DllPath);
        foreach (string argument in (string[])["--redis", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "--host", hostId, "--prefix", prefix, .. LeaseSettings.HostArguments])
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("The test host did not start.");
        var host = new HostProcess(hostId, process, output);
        process.OutputDataReceived += (_, e) => host.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host.Log($"stderr: {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await host.WaitForAsync(l => l.Text == "READY " + hostId, AnswerTimeout);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>Sends a command and returns the first line after it that begins with one of <paramref name="answers"/>.</summary>
    public async Task<HostLine> RequestAsync(string command, params string[] answers)
    {
        int mark;
        lock (_lock)
        {
            mark = _lines.Count;
        }

        Log($"> {command}");
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        return await WaitForAsync(l => answers.Any(a => l.Text.StartsWith(a, StringComparison.Ordinal)), AnswerTimeout, mark);
    }

    /// <summary>Waits for a line (already received, from <paramref name="fromIndex"/> on, or still to come).</summary>
    public async Task<HostLine> WaitForAsync(Func<HostLine, bool> match, TimeSpan timeout, int fromIndex = 0)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        int next = fromIndex;
        while (true)
        {
            lock (_lock)
            {
                for (; next < _lines.Count; next++)
                {
                    if (match(_lines[next]))
                    {
                        return _lines[next];
                    }
                }
            }

            TimeSpan left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (Stopwatch.GetTimestamp() >= deadline || !await _arrived.WaitAsync(left))
            {
                string seen;
                lock (_lock)
                {
                    seen = string.Join(" | ", _lines.Select(l => l.Text));
                }

                throw new TimeoutException($"Host {HostId}: no matching line within {timeout.TotalSeconds:0.0} s (exited: {_process.HasExited}). Lines so far: {seen}");
            }
        }
    }

    /// <summary>Kills the process at once (SIGKILL on Unix): no release, no goodbye, as a crashed gateway.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Log("killed");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    await _process.StandardInput.WriteLineAsync("exit");
                    await _process.StandardInput.FlushAsync();
                    _process.StandardInput.Close();
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(3));
                }
#pragma warning disable CA1031 // Whatever stopped the polite exit, the kill below ends the process.
                catch (Exception)
#pragma warning restore CA1031
                {
                }

                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
                }
            }
        }
        finally
        {
            _process.Dispose();
            _arrived.Dispose();
        }
    }

    private void OnLine(string? text)
    {
        if (text is null)
        {
            return;
        }

        lock (_lock)
        {
            _lines.Add(new HostLine(text, Stopwatch.GetTimestamp()));
        }

        Log($"< {text}");
        try
        {
            _arrived.Release();
        }
        catch (ObjectDisposedException)
        {
            // A line that trails the disposal: nobody waits for it any more.
        }
    }

    private void Log(string message)
    {
        try
        {
            _output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] host {HostId} {message}");
        }
        catch (InvalidOperationException)
        {
            // The test has finished; its output no longer takes lines.
        }
    }

    private static string DotnetPath()
    {
        // The SDK tells child processes which dotnet runs them; a test host launched otherwise falls back to PATH.
        string? fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        string? current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }

    private static string FindDll()
    {
        string? path = Environment.GetEnvironmentVariable("RUNSUPERVISOR_TEST_HOST")
            ?? typeof(HostProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RunSupervisorTestHostPath")?.Value;
        return path is not null && File.Exists(path)
            ? path
            : throw new FileNotFoundException($"The test host dll was not found at '{path}': build tests/RunSupervisor.TestHost (this project's build does).");
    }
}

/// <summary>One line a host printed, and when it arrived (<see cref="Stopwatch.GetTimestamp"/>).</summary>
internal sealed record HostLine(string Text, long ArrivedAt)
{
    public string Word(int index) => Text.Split(' ')[index];

    public long Number(int index) => long.Parse(Word(index), CultureInfo.InvariantCulture);
}
