using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

/// <summary>
/// Records every log line by event name, and lets a test await a line: an event-driven wait for things that
/// happen on thread-pool continuations (an abandoned call settling), instead of polling.
/// </summary>
internal sealed class RecordingLoggerFactory : ILoggerFactory
{
    private readonly ConcurrentQueue<(LogLevel Level, string EventName, string Message)> _lines = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _seen = new();

    public IReadOnlyList<(LogLevel Level, string EventName, string Message)> Lines => [.. _lines];

    /// <summary>Completes once a line with <paramref name="eventName"/> has been logged (at once if it already was).</summary>
    public Task WaitForAsync(string eventName) => Seen(eventName).Task;

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

    public void Dispose()
    {
    }

    private TaskCompletionSource Seen(string eventName) =>
        _seen.GetOrAdd(eventName, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private sealed class Logger(RecordingLoggerFactory owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            string name = eventId.Name ?? eventId.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            owner._lines.Enqueue((logLevel, name, formatter(state, exception)));
            owner.Seen(name).TrySetResult();
        }
    }
}
