using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace GenericHostHeartbeat;

/// <summary>
/// The sample's own options (<c>--duration</c>, <c>--help</c>). Every other argument goes to the host as command-line
/// configuration, so <c>--RunSupervisor:GracePeriod=00:00:01</c> overrides <c>appsettings.json</c> as in any Generic Host.
/// </summary>
internal sealed class CommandLine
{
    /// <summary>The longest <c>--duration</c> accepted: a smoke run, not a service.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(1);

    private CommandLine(TimeSpan? duration, bool showHelp, string[] hostArguments)
    {
        Duration = duration;
        ShowHelp = showHelp;
        HostArguments = hostArguments;
    }

    /// <summary>Gets how long to run before stopping the host; <see langword="null"/> to run until Ctrl+C.</summary>
    public TimeSpan? Duration { get; }

    /// <summary>Gets a value indicating whether <c>--help</c> (or <c>-h</c>) was given.</summary>
    public bool ShowHelp { get; }

    /// <summary>Gets the arguments that are not the sample's own, for the host's configuration.</summary>
    public string[] HostArguments { get; }

    /// <summary>Parses <paramref name="args"/>; on failure <paramref name="error"/> says what is wrong.</summary>
    public static bool TryParse(string[] args, [NotNullWhen(true)] out CommandLine? commandLine, [NotNullWhen(false)] out string? error)
    {
        TimeSpan? duration = null;
        bool showHelp = false;
        List<string> hostArguments = [];
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg is "--help" or "-h")
            {
                showHelp = true;
            }
            else if (arg == "--duration" || arg.StartsWith("--duration=", StringComparison.Ordinal))
            {
                string? value = arg == "--duration" ? (i + 1 < args.Length ? args[++i] : null) : arg["--duration=".Length..];
                if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds)
                    || !double.IsFinite(seconds) || seconds <= 0 || seconds > MaxDuration.TotalSeconds)
                {
                    commandLine = null;
                    error = $"--duration needs a number of seconds greater than 0 and at most {MaxDuration.TotalSeconds:0} (was '{value}').";
                    return false;
                }

                duration = TimeSpan.FromSeconds(seconds);
            }
            else
            {
                hostArguments.Add(arg);
            }
        }

        commandLine = new CommandLine(duration, showHelp, [.. hostArguments]);
        error = null;
        return true;
    }

    /// <summary>Prints the usage text.</summary>
    public static void PrintUsage(TextWriter output) => output.WriteLine(
        """
        GenericHostHeartbeat: RunSupervisor in a Generic Host; a heartbeat, an agent that sometimes hangs, health checks,
        and the shutdown drain.

        Usage: dotnet run --project samples/GenericHostHeartbeat [-- OPTIONS] [-- HOST CONFIGURATION]

        Options:
          --duration <seconds>  stop the host after that many seconds (as Ctrl+C would); for CI smoke runs
          -h, --help            print this help
          anything else         host configuration, e.g. --RunSupervisor:GracePeriod=00:00:01

        Exit codes:
          0   recovered: a hung run was force-evicted and the heartbeat started runs on the session again
          1   not recovered (the VERDICT line says what was seen)
          2   the host did not stop within --duration + the shutdown timeout + 5 s (a hang; should never happen)
          64  bad command line
          78  invalid configuration (ValidateOnStart names the option and its range)
        """);
}
