using Microsoft.Extensions.Logging;

namespace RunSupervisor.Agents;

/// <summary>
/// Every log message RunSupervisor.Agents writes. Event ids are stable (the README lists them) and start at 201 so
/// they never collide with the core's or the other packages'; never renumber, add new ones at the end.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 201, EventName = "UnsupervisedAgentRun", Level = LogLevel.Debug,
        Message = "Agent turn ({Operation}) passed through unsupervised: it has no session id ({Reason}).")]
    public static partial void UnsupervisedAgentRun(this ILogger logger, string operation, string reason);
}
