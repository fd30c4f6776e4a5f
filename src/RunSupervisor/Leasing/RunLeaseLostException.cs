using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor.Leasing;

/// <summary>
/// Thrown to the caller of a run that ended <see cref="RunEndReason.LeaseLost"/>: its lease expired, was taken over or
/// could no longer be confirmed, so the session may already be another host's and the run's work must not be trusted.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session, run and token that lost the lease; one without them would be meaningless.")]
public sealed class RunLeaseLostException : OperationCanceledException
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseLostException"/> class.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="runId">The run.</param>
    /// <param name="fencingToken">The run's fencing token.</param>
    /// <param name="detail">What happened to the lease.</param>
    /// <param name="token">The run's abort token, cancelled when the lease was lost.</param>
    public RunLeaseLostException(string sessionId, long runId, long fencingToken, string? detail, CancellationToken token = default)
        : base(string.Format(CultureInfo.InvariantCulture, "Run {0} for session '{1}' (fencing token {2}) lost its lease: {3}.", runId, sessionId, fencingToken, detail ?? "the lease could not be confirmed"), token)
    {
        SessionId = sessionId;
        RunId = runId;
        FencingToken = fencingToken;
        Detail = detail;
    }

    /// <summary>Gets the session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the run.</summary>
    public long RunId { get; }

    /// <summary>Gets the run's fencing token; a resource that checks tokens rejects this run's writes once a newer token reached it.</summary>
    public long FencingToken { get; }

    /// <summary>Gets what happened to the lease.</summary>
    public string? Detail { get; }
}
