using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor.Leasing;

/// <summary>
/// Thrown when a start needs the lease store and cannot reach it (with <see cref="StoreUnavailableBehavior.FailClosed"/>),
/// and by <see cref="InMemoryRunLeaseStore"/> while it simulates an outage.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session whose lease could not be taken.")]
public sealed class RunLeaseUnavailableException : InvalidOperationException
{
    /// <summary>Initializes a new instance of the <see cref="RunLeaseUnavailableException"/> class.</summary>
    /// <param name="sessionId">The session whose lease could not be taken or read.</param>
    /// <param name="innerException">What the store threw, or the timeout; <see langword="null"/> when none.</param>
    public RunLeaseUnavailableException(string sessionId, Exception? innerException = null)
        : base(string.Format(CultureInfo.InvariantCulture, "The run lease store is unavailable for session '{0}'{1}.", sessionId, innerException is null ? string.Empty : ": " + innerException.Message), innerException)
    {
        SessionId = sessionId;
    }

    /// <summary>Gets the session whose lease could not be taken or read.</summary>
    public string SessionId { get; }
}
