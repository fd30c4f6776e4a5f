using System.Net;
using Microsoft.Extensions.Logging;
using RunSupervisor.Leasing;
using StackExchange.Redis;

namespace RunSupervisor.Redis;

/// <summary>
/// Every log message RunSupervisor.Redis writes. Event ids are stable (hosts filter and alert on them; the package
/// README lists them) and live in 300-399 so they never meet the core's or another package's. Never renumber.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 300, EventName = "RedisCallFailed", Level = LogLevel.Warning,
        Message = "Redis lease store call {Operation} for '{SessionId}' failed after {ElapsedMs:F1} ms.")]
    public static partial void CallFailed(this ILogger logger, string operation, string sessionId, double elapsedMs, Exception exception);

    [LoggerMessage(EventId = 301, EventName = "RedisCallTimedOut", Level = LogLevel.Warning,
        Message = "Redis lease store call {Operation} for '{SessionId}' got no answer within {Timeout}.")]
    public static partial void CallTimedOut(this ILogger logger, string operation, string sessionId, TimeSpan timeout);

    [LoggerMessage(EventId = 302, EventName = "RedisAcquireCompensationQueued", Level = LogLevel.Information,
        Message = "The acquire for session '{SessionId}' did not complete; a release of whatever it took follows once it settles.")]
    public static partial void AcquireCompensationQueued(this ILogger logger, string sessionId);

    [LoggerMessage(EventId = 303, EventName = "RedisAcquireCompensated", Level = LogLevel.Information,
        Message = "The acquire for session '{SessionId}' had taken the lease after its caller gave up; the lease (token {FencingToken}) was released.")]
    public static partial void AcquireCompensated(this ILogger logger, string sessionId, long fencingToken);

    [LoggerMessage(EventId = 304, EventName = "RedisAcquireCompensationFailed", Level = LogLevel.Warning,
        Message = "The release queued behind a failed acquire for session '{SessionId}' failed; if that acquire took the lease, it lapses at its time to live.")]
    public static partial void AcquireCompensationFailed(this ILogger logger, string sessionId, Exception exception);

    [LoggerMessage(EventId = 305, EventName = "RedisConnectionFailed", Level = LogLevel.Warning,
        Message = "Redis connection to {EndPoint} ({ConnectionType}) failed: {FailureType}.")]
    public static partial void ConnectionFailed(this ILogger logger, EndPoint? endPoint, ConnectionType connectionType, ConnectionFailureType failureType, Exception? exception);

    [LoggerMessage(EventId = 306, EventName = "RedisConnectionRestored", Level = LogLevel.Information,
        Message = "Redis connection to {EndPoint} ({ConnectionType}) restored; {Observers} observer(s) told to reconcile.")]
    public static partial void ConnectionRestored(this ILogger logger, EndPoint? endPoint, ConnectionType connectionType, int observers);

    [LoggerMessage(EventId = 307, EventName = "RedisNotificationMalformed", Level = LogLevel.Warning,
        Message = "A message on channel '{Channel}' is not a lease notification and was ignored.")]
    public static partial void NotificationMalformed(this ILogger logger, string channel);

    [LoggerMessage(EventId = 308, EventName = "RedisObserverFailed", Level = LogLevel.Error,
        Message = "A lease observer of host '{HostId}' threw while handling {Kind} for session '{SessionId}'.")]
    public static partial void ObserverFailed(this ILogger logger, string hostId, RunLeaseNotificationKind kind, string sessionId, Exception exception);

    [LoggerMessage(EventId = 309, EventName = "RedisNotificationReceived", Level = LogLevel.Debug,
        Message = "Lease notification {Kind} for session '{SessionId}' (token {FencingToken}) delivered to {Observers} observer(s).")]
    public static partial void NotificationReceived(this ILogger logger, RunLeaseNotificationKind kind, string sessionId, long fencingToken, int observers);

    [LoggerMessage(EventId = 310, EventName = "RedisMeterListenerFailed", Level = LogLevel.Error,
        Message = "A meter listener threw while {Instrument} was recorded; the measurement may be lost, the store is unaffected.")]
    public static partial void MeterListenerFailed(this ILogger logger, string instrument, Exception exception);
}
