using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown by <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>
/// when the run passed its deadline and the provider honoured the cancellation of its abort token.
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
        : base(string.Format(CultureInfo.InvariantCulture, "Run {0} for session '{1}' timed out after {2}.", runId, sessionId, timeout), innerException)
    {
        SessionId = sessionId;
        RunId = runId;
        Timeout = timeout;
    }

    /// <summary>Gets the session of the run.</summary>
    public string SessionId { get; }

    /// <summary>Gets the id of the run.</summary>
    public long RunId { get; }

    /// <summary>Gets how long the run was allowed before its deadline (including any extensions).</summary>
    public TimeSpan Timeout { get; }
}
