using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace RunSupervisor.Samples;

/// <summary>
/// The sample's output: one line per event, stamped with the time since the sample started. It is also the
/// <see cref="ILoggerFactory"/> handed to RunSupervisor, so the library's own log lines (with their event
/// names) land in the same timeline, in order, without a dependency on a logging package.
/// </summary>
internal sealed class Timeline : ILoggerFactory
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private readonly LogLevel _minimumLevel;
    private volatile bool _disposed;

    /// <param name="minimumLevel">The lowest level of library log line to print.</param>
    public Timeline(LogLevel minimumLevel) => _minimumLevel = minimumLevel;

    /// <summary>Gets the time since the sample started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Prints one line, e.g. <c>[ 3.01s] run 1 started</c>. Safe from any thread: timers, socket callbacks and the watchdog all print.</summary>
    public void Print(string message)
    {
        lock (_lock)
        {
            Console.WriteLine($"[{_clock.Elapsed.TotalSeconds,5:0.00}s] {message}");
        }
    }

    public ILogger CreateLogger(string categoryName) => new TimelineLogger(this);

    /// <summary>Not supported: the timeline is the only sink this sample needs.</summary>
    public void AddProvider(ILoggerProvider provider) =>
        throw new NotSupportedException("The timeline prints every log line itself; it takes no other providers.");

    /// <summary>Stops printing library log lines, so nothing trails the verdict while the sample shuts down.</summary>
    public void Dispose() => _disposed = true;

    internal bool IsEnabled(LogLevel logLevel) => !_disposed && logLevel != LogLevel.None && logLevel >= _minimumLevel;
}
