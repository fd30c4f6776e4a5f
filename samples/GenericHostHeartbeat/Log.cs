using Microsoft.Extensions.Logging;

namespace GenericHostHeartbeat;

/// <summary>
/// The sample's own log lines, source-generated like the library's. Event ids start at 1000 so that they never collide
/// with RunSupervisor's (1–14) or RunSupervisor.Hosting's (100–101) in one log stream.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information,
        Message = "Heartbeat {Heartbeat}: {Action} ({Reason}) -> agent turn {Turn}")]
    public static partial void HeartbeatRunNow(this ILogger logger, string heartbeat, string action, string reason, int turn);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information,
        Message = "Heartbeat {Heartbeat}: {Action} ({Reason}); {Dropped} dropped since the session was last idle")]
    public static partial void HeartbeatNotRun(this ILogger logger, string heartbeat, string action, string reason, int dropped);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information,
        Message = "HeartbeatOwed: '{SessionId}' is idle again after {Dropped} dropped heartbeat(s); delivering the owed tick now, not at the next one")]
    public static partial void HeartbeatOwed(this ILogger logger, string sessionId, int dropped);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error,
        Message = "Heartbeat {Heartbeat}: the run could not start")]
    public static partial void RunNotStarted(this ILogger logger, string heartbeat, Exception exception);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information,
        Message = "Agent turn {Turn} (run {RunId}): calling the model")]
    public static partial void CallingModel(this ILogger logger, int turn, long runId);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning,
        Message = "Agent turn {Turn} (run {RunId}): calling the model; this call hangs and ignores its cancellation token (it comes back after {HangsFor})")]
    public static partial void CallingHangingModel(this ILogger logger, int turn, long runId, TimeSpan hangsFor);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning,
        Message = "Agent turn {Turn} (run {RunId}): abort token cancelled, but the hung call ignores it and keeps waiting")]
    public static partial void AbortIgnored(this ILogger logger, int turn, long runId);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Information,
        Message = "Agent turn {Turn}: completed: {Reply}")]
    public static partial void TurnCompleted(this ILogger logger, int turn, string reply);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Warning,
        Message = "Agent turn {Turn}: RunAsync threw RunEvictedException after {Age}; the session is free, the hung call waits in the abandoned ledger")]
    public static partial void TurnEvicted(this ILogger logger, int turn, TimeSpan age);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Warning,
        Message = "Agent turn {Turn}: RunAsync threw {ExceptionType}: {ExceptionMessage}")]
    public static partial void TurnFailed(this ILogger logger, int turn, string exceptionType, string exceptionMessage);

    [LoggerMessage(EventId = 1020,
        Message = "Health {Status}: {Description} [{Data}]")]
    public static partial void HealthReported(this ILogger logger, LogLevel level, string status, string? description, string data);

    [LoggerMessage(EventId = 1021, Level = LogLevel.Warning,
        Message = "Health check failed to run")]
    public static partial void HealthCheckFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1030, Level = LogLevel.Information,
        Message = "--duration {Seconds} s elapsed: stopping the host (RunSupervisor's shutdown drain runs last)")]
    public static partial void DurationElapsed(this ILogger logger, double seconds);
}
