using System.Diagnostics;
using System.Reflection;

namespace MultiHostFailover;

/// <summary>
/// A gateway host: this very program started again in child mode, as its own OS process, with its stdin and stdout
/// redirected. Every line it prints goes to <see cref="LineReceived"/>. Disposal ends it: politely, then by kill.
/// </summary>
internal sealed class HostProcess : IDisposable
{
    private readonly Process _process;

    private HostProcess(string hostId, Process process)
    {
        HostId = hostId;
        _process = process;
    }

    public event Action<HostProcess, string>? LineReceived;

    public string HostId { get; }

    public int ProcessId => _process.Id;

    public static HostProcess Start(string hostId, string redis, string prefix, bool verbose)
    {
        // Under `dotnet run` (or an apphost) the process path is this program; under `dotnet MultiHostFailover.dll` it
        // is dotnet, which then needs the dll.
        string executable = Environment.ProcessPath ?? throw new InvalidOperationException("The process path is unknown.");
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(executable) == "dotnet")
        {
            info.ArgumentList.Add(Assembly.GetEntryAssembly()?.Location ?? throw new InvalidOperationException("The entry assembly is unknown."));
        }

        foreach (string argument in (string[])["--child", hostId, "--redis", redis, "--prefix", prefix, .. verbose ? ["--verbose"] : Array.Empty<string>()])
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Host {hostId} did not start.");
        var host = new HostProcess(hostId, process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host.LineReceived?.Invoke(host, e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host.LineReceived?.Invoke(host, "LOG stderr: " + e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    public void Send(string command)
    {
        if (_process.HasExited)
        {
            return;
        }

        try
        {
            _process.StandardInput.WriteLine(command);
            _process.StandardInput.Flush();
        }
        catch (IOException)
        {
            // It died meanwhile (killed, in this sample): the command goes nowhere, as a request to a dead host would.
        }
    }

    /// <summary>SIGKILL on Unix: no release, no goodbye, as a crashed gateway.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(TimeSpan.FromSeconds(5));
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Send("exit");
                _process.StandardInput.Close();
                if (!_process.WaitForExit(TimeSpan.FromSeconds(3)))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(TimeSpan.FromSeconds(5));
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            _process.Dispose();
        }
    }
}
