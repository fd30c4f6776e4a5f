using Microsoft.Extensions.Logging;

namespace RunSupervisor.Samples;

/// <summary>
/// Writes RunSupervisor's log lines into the <see cref="Timeline"/> as <c>warn RunTimedOut: …</c>: the event
/// name is what a host filters and alerts on, so the sample shows it.
/// </summary>
internal sealed class TimelineLogger : ILogger
{
    private readonly Timeline _timeline;

    public TimelineLogger(Timeline timeline) => _timeline = timeline;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => _timeline.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }

        string line = $"  {ShortName(logLevel)} {eventId.Name ?? eventId.Id.ToString()}: {formatter(state, exception)}";
        _timeline.Print(exception is null ? line : $"{line} ({exception.GetType().Name}: {exception.Message})");
    }

    // The four-letter level names of the .NET console logger, so the lines look familiar.
    private static string ShortName(LogLevel logLevel) => logLevel switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        _ => "crit",
    };
}
