using Microsoft.Extensions.Logging;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// Every log message RunSupervisor.Extensions.AI writes. Event ids are stable (the README lists them) and start at
/// 101 so they never collide with the core's; never renumber, add new ones at the end.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 101, EventName = "UnsupervisedChatCall", Level = LogLevel.Debug,
        Message = "Chat call ({Operation}) passed through unsupervised: it has no session id ({Source} returned null).")]
    public static partial void UnsupervisedChatCall(this ILogger logger, string operation, string source);
}
