using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown when a start cannot be admitted or queued: its session already has
/// <see cref="RunSupervisorOptions.MaxQueuedPerSession"/> starts waiting, or (for a start that does not wait) its lane
/// or the registry is at its cap of concurrent runs. Also the failure of a waiting start pushed out of its queue by
/// <see cref="QueueOverflowBehavior.CancelOldest"/>.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session and the limit it hit; one without them would be meaningless.")]
public sealed class RunQueueFullException : InvalidOperationException
{
    /// <summary>Initializes a new instance of the <see cref="RunQueueFullException"/> class.</summary>
    /// <param name="sessionId">The session of the start.</param>
    /// <param name="lane">The start's lane; <see langword="null"/> for the default lane.</param>
    /// <param name="limit">The limit that was hit: <see cref="RunSupervisorOptions.MaxQueuedPerSession"/>, the lane's cap or <see cref="RunSupervisorOptions.MaxActiveRuns"/>.</param>
    /// <param name="message">What was full, in words.</param>
    public RunQueueFullException(string sessionId, string? lane, int limit, string message)
        : base(message)
    {
        SessionId = sessionId;
        Lane = lane;
        Limit = limit;
    }

    /// <summary>Gets the session of the start.</summary>
    public string SessionId { get; }

    /// <summary>Gets the start's lane; <see langword="null"/> for the default lane.</summary>
    public string? Lane { get; }

    /// <summary>Gets the limit that was hit.</summary>
    public int Limit { get; }

    internal static RunQueueFullException SessionQueueFull(string sessionId, string? lane, int limit, bool pushedOut)
        => new(sessionId, lane, limit, pushedOut
            ? string.Format(CultureInfo.InvariantCulture, "The waiting start for session '{0}' was cancelled to make room: the session's queue is full (MaxQueuedPerSession {1}, QueueOverflow CancelOldest).", sessionId, limit)
            : string.Format(CultureInfo.InvariantCulture, "Session '{0}' already has {1} starts waiting (MaxQueuedPerSession).", sessionId, limit));

    internal static RunQueueFullException LaneFull(string sessionId, string? lane, int limit)
        => new(sessionId, lane, limit, lane is null
            ? string.Format(CultureInfo.InvariantCulture, "The registry is at its cap of {0} concurrent runs (MaxActiveRuns); session '{1}' cannot start now. StartAsync waits for a slot.", limit, sessionId)
            : string.Format(CultureInfo.InvariantCulture, "Lane '{0}' is at its cap of {1} concurrent runs (or the registry at MaxActiveRuns); session '{2}' cannot start now. StartAsync waits for a slot.", lane, limit, sessionId));
}
