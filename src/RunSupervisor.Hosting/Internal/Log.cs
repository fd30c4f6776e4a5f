using Microsoft.Extensions.Logging;

namespace RunSupervisor.Hosting;

/// <summary>
/// Every log message RunSupervisor.Hosting writes. Event ids are stable (the README lists them) and start at 100 so
/// that they never collide with the core's; never renumber, add new ones at the end.
/// </summary>
internal static partial class Log
{
    /// <summary>The one line a shutdown drain logs: Information when every run ended, Warning otherwise.</summary>
    [LoggerMessage(EventId = 100, EventName = "ShutdownDrainSummary",
        Message = "Shutdown drain finished in {Elapsed} (budget {Budget}): {Active} active run(s), {Drained} drained, {Evicted} force-evicted, {StillRunning} still running; {Abandoned} abandoned run(s) in the ledger (shutdown token cancelled: {Cancelled}).")]
    public static partial void ShutdownDrainSummary(this ILogger logger, LogLevel level, TimeSpan elapsed, TimeSpan budget, int active, int drained, int evicted, int stillRunning, int abandoned, bool cancelled);

    /// <summary>Logged once at start-up when the host's shutdown window cannot hold the drain's wait for the grace period.</summary>
    [LoggerMessage(EventId = 101, EventName = "ShutdownTimeoutTooShort", Level = LogLevel.Warning,
        Message = "HostOptions.ShutdownTimeout ({ShutdownTimeout}) is not longer than RunSupervisorOptions.GracePeriod ({GracePeriod}) + {Margin}: on shutdown, a run that ignores its abort cannot be force-evicted before the host gives up, so the drain will stop waiting after {Budget} at most and leave such runs to the registry's disposal. Set HostOptions.ShutdownTimeout (configuration key \"shutdownTimeoutSeconds\") above {Required}, or lower RunSupervisorOptions.GracePeriod.")]
    public static partial void ShutdownTimeoutTooShort(this ILogger logger, TimeSpan shutdownTimeout, TimeSpan gracePeriod, TimeSpan margin, TimeSpan budget, TimeSpan required);

    /// <summary>One line per run a shutdown drain did not see end by itself: force-evicted, or still running when it stopped waiting.</summary>
    [LoggerMessage(EventId = 102, EventName = "ShutdownRunNotDrained", Level = LogLevel.Warning,
        Message = "Shutdown drain: run {RunId} of session '{SessionId}' was not drained: {Outcome} (end reason {Reason}, detail {Detail}).")]
    public static partial void ShutdownRunNotDrained(this ILogger logger, string sessionId, long runId, DrainOutcome outcome, RunEndReason? reason, string? detail);
}
