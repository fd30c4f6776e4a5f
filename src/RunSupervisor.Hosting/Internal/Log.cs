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
        Message = "Shutdown drain finished in {Elapsed}: {Active} active run(s), {Drained} drained, {Evicted} force-evicted, {StillRunning} still running; {Abandoned} abandoned run(s) in the ledger (shutdown token cancelled: {Cancelled}).")]
    public static partial void ShutdownDrainSummary(this ILogger logger, LogLevel level, TimeSpan elapsed, int active, int drained, int evicted, int stillRunning, int abandoned, bool cancelled);
}
