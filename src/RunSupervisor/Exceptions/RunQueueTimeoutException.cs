using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown when a waiting start was not admitted within its <see cref="RunStartOptions.QueueTimeout"/> (at once when
/// the timeout is zero). Its work never started.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session and how long it waited; one without them would be meaningless.")]
public sealed class RunQueueTimeoutException : TimeoutException
{
    /// <summary>Initializes a new instance of the <see cref="RunQueueTimeoutException"/> class.</summary>
    /// <param name="sessionId">The session of the start.</param>
    /// <param name="lane">The start's lane; <see langword="null"/> for the default lane.</param>
    /// <param name="waited">How long the start waited.</param>
    public RunQueueTimeoutException(string sessionId, string? lane, TimeSpan waited)
        : base(string.Format(CultureInfo.InvariantCulture, "The start for session '{0}'{1} was not admitted within {2}; it never ran.", sessionId, lane is null ? string.Empty : $" in lane '{lane}'", waited))
    {
        SessionId = sessionId;
        Lane = lane;
        Waited = waited;
    }

    /// <summary>Gets the session of the start.</summary>
    public string SessionId { get; }

    /// <summary>Gets the start's lane; <see langword="null"/> for the default lane.</summary>
    public string? Lane { get; }

    /// <summary>Gets how long the start waited before it gave up.</summary>
    public TimeSpan Waited { get; }
}
