using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown by <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>
/// when the run passed its deadline (<see cref="RunEndReason.TimedOut"/>) or made no progress for its idle timeout
/// (<see cref="RunEndReason.Stalled"/>), and the provider honoured the cancellation of its abort token.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session and run that timed out; one without them would be meaningless.")]
public sealed class RunTimedOutException : TimeoutException
{
    /// <summary>Initializes a new instance of the <see cref="RunTimedOutException"/> class.</summary>
    /// <param name="sessionId">The session of the run.</param>
    /// <param name="runId">The id of the run.</param>
    /// <param name="timeout">How long the run was allowed before its deadline.</param>
    /// <param name="innerException">The cancellation the provider surfaced, if any.</param>
    public RunTimedOutException(string sessionId, long runId, TimeSpan timeout, Exception? innerException = null)
        : this(sessionId, runId, timeout, RunEndReason.TimedOut, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RunTimedOutException"/> class for a deadline or an idle timeout.</summary>
    /// <param name="sessionId">The session of the run.</param>
    /// <param name="runId">The id of the run.</param>
    /// <param name="timeout">How long the run was allowed: before its deadline (<see cref="RunEndReason.TimedOut"/>) or without progress (<see cref="RunEndReason.Stalled"/>).</param>
    /// <param name="reason"><see cref="RunEndReason.TimedOut"/> or <see cref="RunEndReason.Stalled"/>.</param>
    /// <param name="innerException">The cancellation the provider surfaced, if any.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="reason"/> is neither.</exception>
    public RunTimedOutException(string sessionId, long runId, TimeSpan timeout, RunEndReason reason, Exception? innerException = null)
        : base(Format(sessionId, runId, timeout, reason), innerException)
    {
        SessionId = sessionId;
        RunId = runId;
        Timeout = timeout;
        Reason = reason;
    }

    /// <summary>Gets the session of the run.</summary>
    public string SessionId { get; }

    /// <summary>Gets the id of the run.</summary>
    public long RunId { get; }

    /// <summary>
    /// Gets how long the run was allowed: before its deadline (including any extensions) for
    /// <see cref="RunEndReason.TimedOut"/>, without progress for <see cref="RunEndReason.Stalled"/>.
    /// </summary>
    public TimeSpan Timeout { get; }

    /// <summary>Gets why the run was aborted: <see cref="RunEndReason.TimedOut"/> (its deadline) or <see cref="RunEndReason.Stalled"/> (its idle timeout).</summary>
    public RunEndReason Reason { get; }

    private static string Format(string sessionId, long runId, TimeSpan timeout, RunEndReason reason) => reason switch
    {
        RunEndReason.TimedOut => string.Format(CultureInfo.InvariantCulture, "Run {0} for session '{1}' timed out after {2}.", runId, sessionId, timeout),
        RunEndReason.Stalled => string.Format(CultureInfo.InvariantCulture, "Run {0} for session '{1}' stalled: no progress for {2}.", runId, sessionId, timeout),
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "RunTimedOutException.Reason must be TimedOut or Stalled."),
    };
}
