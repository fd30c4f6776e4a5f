using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>
/// Every log message RunSupervisor writes. Event ids are stable: hosts filter and alert on them, and the
/// README lists them. Never renumber; add new ones at the end.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, EventName = "RunStarted", Level = LogLevel.Debug,
        Message = "Run {RunId} started for session '{SessionId}' (deadline {Deadline:O}).")]
    public static partial void RunStarted(this ILogger logger, string sessionId, long runId, DateTimeOffset deadline);

    [LoggerMessage(EventId = 2, EventName = "RunEnded", Level = LogLevel.Debug,
        Message = "Run {RunId} for session '{SessionId}' ended: {Reason} after {Duration} ({Detail}).")]
    public static partial void RunEnded(this ILogger logger, string sessionId, long runId, RunEndReason reason, TimeSpan duration, string detail);

    [LoggerMessage(EventId = 3, EventName = "StaleReleaseIgnored", Level = LogLevel.Debug,
        Message = "Release of run {RunId} for session '{SessionId}' ignored: the run is no longer the session's current run ({Status}).")]
    public static partial void StaleReleaseIgnored(this ILogger logger, string sessionId, long runId, RunStatus status);

    [LoggerMessage(EventId = 4, EventName = "RunTimedOut", Level = LogLevel.Warning,
        Message = "Run {RunId} for session '{SessionId}' timed out after {Age}; abort sent, force eviction at {EvictAt:O} unless it settles.")]
    public static partial void RunTimedOut(this ILogger logger, string sessionId, long runId, TimeSpan age, DateTimeOffset evictAt);

    [LoggerMessage(EventId = 5, EventName = "RunForceEvicted", Level = LogLevel.Warning,
        Message = "Run {RunId} for session '{SessionId}' force-evicted after {Age}; {Detail}. The session is free.")]
    public static partial void RunForceEvicted(this ILogger logger, string sessionId, long runId, TimeSpan age, string detail);

    [LoggerMessage(EventId = 6, EventName = "RunAborted", Level = LogLevel.Information,
        Message = "Run {RunId} for session '{SessionId}' aborted: {AbortReason}.")]
    public static partial void RunAborted(this ILogger logger, string sessionId, long runId, string abortReason);

    [LoggerMessage(EventId = 7, EventName = "RunSuperseded", Level = LogLevel.Information,
        Message = "Run {RunId} for session '{SessionId}' superseded by run {NewRunId}.")]
    public static partial void RunSuperseded(this ILogger logger, string sessionId, long runId, long newRunId);

    [LoggerMessage(EventId = 8, EventName = "AbandonedRunSettled", Level = LogLevel.Information,
        Message = "Abandoned run {RunId} for session '{SessionId}' settled ({Outcome}) {Lateness} after it left the registry.")]
    public static partial void AbandonedRunSettled(this ILogger logger, string sessionId, long runId, string outcome, TimeSpan lateness, Exception? exception);

    [LoggerMessage(EventId = 9, EventName = "AbandonedRunForgotten", Level = LogLevel.Warning,
        Message = "Abandoned run {RunId} for session '{SessionId}' forgotten: the ledger is full ({MaxAbandonedRuns} runs).")]
    public static partial void AbandonedRunForgotten(this ILogger logger, string sessionId, long runId, int maxAbandonedRuns);

    [LoggerMessage(EventId = 10, EventName = "HeartbeatDropped", Level = LogLevel.Information,
        Message = "Heartbeat for session '{SessionId}' dropped: {Reason} ({DroppedHeartbeats} dropped since the session was last idle).")]
    public static partial void HeartbeatDropped(this ILogger logger, string sessionId, string reason, int droppedHeartbeats);

    [LoggerMessage(EventId = 11, EventName = "HeartbeatOwed", Level = LogLevel.Information,
        Message = "Session '{SessionId}' is idle after dropping {DroppedHeartbeats} heartbeat(s); a heartbeat is owed.")]
    public static partial void HeartbeatOwed(this ILogger logger, string sessionId, int droppedHeartbeats);

    [LoggerMessage(EventId = 12, EventName = "DrainTimedOut", Level = LogLevel.Warning,
        Message = "Drain timed out after {Timeout}: {Aborted} run(s) aborted, {Evicted} force-evicted, {StillRunning} left running.")]
    public static partial void DrainTimedOut(this ILogger logger, TimeSpan timeout, int aborted, int evicted, int stillRunning);

    [LoggerMessage(EventId = 13, EventName = "DrainCompleted", Level = LogLevel.Information,
        Message = "Drain completed: {Drained} run(s) ended within the timeout.")]
    public static partial void DrainCompleted(this ILogger logger, int drained);

    [LoggerMessage(EventId = 14, EventName = "CallbackFailed", Level = LogLevel.Error,
        Message = "A {Callback} callback for session '{SessionId}' threw; the registry is unaffected.")]
    public static partial void CallbackFailed(this ILogger logger, string callback, string sessionId, Exception exception);

    [LoggerMessage(EventId = 15, EventName = "AbortCallbackFailed", Level = LogLevel.Error,
        Message = "A cancellation callback on the abort token of run {RunId} for session '{SessionId}' threw; the registry is unaffected.")]
    public static partial void AbortCallbackFailed(this ILogger logger, string sessionId, long runId, Exception exception);

    [LoggerMessage(EventId = 16, EventName = "WatchdogLate", Level = LogLevel.Warning,
        Message = "The watchdog ran {Lateness} late ({Count} abort(s) or eviction(s) due): thread pool starved or process paused. Each was handled at its fixed instant's terms.")]
    public static partial void WatchdogLate(this ILogger logger, TimeSpan lateness, int count);

    [LoggerMessage(EventId = 17, EventName = "RunQueued", Level = LogLevel.Debug,
        Message = "A start for session '{SessionId}' is waiting for admission in lane '{Lane}' ({Queued} waiting for the session).")]
    public static partial void RunQueued(this ILogger logger, string sessionId, string lane, int queued);

    [LoggerMessage(EventId = 18, EventName = "RunAdmitted", Level = LogLevel.Debug,
        Message = "Run {RunId} for session '{SessionId}' admitted in lane '{Lane}' after waiting {Waited}.")]
    public static partial void RunAdmitted(this ILogger logger, string sessionId, long runId, string lane, TimeSpan waited);

    [LoggerMessage(EventId = 19, EventName = "QueueTimedOut", Level = LogLevel.Warning,
        Message = "A start for session '{SessionId}' in lane '{Lane}' gave up after waiting {Waited} for admission; it never ran.")]
    public static partial void QueueTimedOut(this ILogger logger, string sessionId, string lane, TimeSpan waited);

    [LoggerMessage(EventId = 20, EventName = "QueueFull", Level = LogLevel.Warning,
        Message = "A start for session '{SessionId}' in lane '{Lane}' failed: the session's queue is full ({Limit} waiting).")]
    public static partial void QueueFull(this ILogger logger, string sessionId, string lane, int limit);

    [LoggerMessage(EventId = 21, EventName = "RunPreempted", Level = LogLevel.Information,
        Message = "Background run {RunId} for session '{SessionId}' preempted by foreground run {NewRunId}.")]
    public static partial void RunPreempted(this ILogger logger, string sessionId, long runId, long newRunId);

    [LoggerMessage(EventId = 22, EventName = "RunStalled", Level = LogLevel.Warning,
        Message = "Run {RunId} for session '{SessionId}' made no progress for {IdleTimeout}; abort sent, force eviction at {EvictAt:O} unless it settles.")]
    public static partial void RunStalled(this ILogger logger, string sessionId, long runId, TimeSpan idleTimeout, DateTimeOffset evictAt);

    [LoggerMessage(EventId = 23, EventName = "LeaseAcquired", Level = LogLevel.Debug,
        Message = "Run {RunId} for session '{SessionId}' holds the session's lease as host '{HostId}' (fencing token {FencingToken}).")]
    public static partial void LeaseAcquired(this ILogger logger, string sessionId, long runId, string hostId, long fencingToken);

    [LoggerMessage(EventId = 24, EventName = "LeaseHeldElsewhere", Level = LogLevel.Information,
        Message = "A start for session '{SessionId}' found the session held by host '{OwnerHostId}' (fencing token {FencingToken}).")]
    public static partial void LeaseHeldElsewhere(this ILogger logger, string sessionId, string ownerHostId, long fencingToken);

    [LoggerMessage(EventId = 25, EventName = "LeaseLost", Level = LogLevel.Warning,
        Message = "Run {RunId} for session '{SessionId}' (fencing token {FencingToken}) lost its lease and left the registry: {Detail}.")]
    public static partial void LeaseLost(this ILogger logger, string sessionId, long runId, long fencingToken, string detail);

    [LoggerMessage(EventId = 26, EventName = "LeaseStoreUnavailable", Level = LogLevel.Warning,
        Message = "The run lease store did not answer for session '{SessionId}' ({Operation}); {Consequence}.")]
    public static partial void LeaseStoreUnavailable(this ILogger logger, string sessionId, string operation, string consequence, Exception? exception);

    [LoggerMessage(EventId = 27, EventName = "UnfencedStart", Level = LogLevel.Warning,
        Message = "Run {RunId} for session '{SessionId}' started without a lease (OnStoreUnavailable = FailOpen): another host may run the session too.")]
    public static partial void UnfencedStart(this ILogger logger, string sessionId, long runId);

    [LoggerMessage(EventId = 28, EventName = "LeaseRenewFailed", Level = LogLevel.Warning,
        Message = "Renewing {Count} run leases failed; each run keeps its lease until its local validity ends.")]
    public static partial void LeaseRenewFailed(this ILogger logger, int count, Exception exception);

    [LoggerMessage(EventId = 29, EventName = "RemoteSupersede", Level = LogLevel.Information,
        Message = "Run {RunId} for session '{SessionId}' was superseded by host '{NewHostId}' (fencing token {NewFencingToken}).")]
    public static partial void RemoteSupersede(this ILogger logger, string sessionId, long runId, string newHostId, long newFencingToken);

    [LoggerMessage(EventId = 30, EventName = "LeaseReleaseFailed", Level = LogLevel.Debug,
        Message = "Releasing the lease of session '{SessionId}' (fencing token {FencingToken}) failed; it lapses one time to live after its last renew.")]
    public static partial void LeaseReleaseFailed(this ILogger logger, string sessionId, long fencingToken, Exception exception);

    [LoggerMessage(EventId = 31, EventName = "DrainCancelledWaiting", Level = LogLevel.Information,
        Message = "Drain cancelled {Count} start(s) waiting for admission: their work never runs.")]
    public static partial void DrainCancelledWaiting(this ILogger logger, int count);

    [LoggerMessage(EventId = 32, EventName = "MeterListenerFailed", Level = LogLevel.Error,
        Message = "A meter listener threw while {Instrument} was recorded; the measurement may be lost, the registry is unaffected.")]
    public static partial void MeterListenerFailed(this ILogger logger, string instrument, Exception exception);
}
