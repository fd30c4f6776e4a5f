using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown when a run is started on a session that already has an active run and the caller did not ask
/// to supersede it.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the busy session and its current run; one without them would be meaningless.")]
public sealed class SessionBusyException : InvalidOperationException
{
    /// <summary>Initializes a new instance of the <see cref="SessionBusyException"/> class.</summary>
    /// <param name="sessionId">The busy session.</param>
    /// <param name="runId">The id of the run that currently owns the session.</param>
    public SessionBusyException(string sessionId, long runId)
        : base(string.Format(CultureInfo.InvariantCulture, "Session '{0}' already has an active run (RunId {1}). Wait for it to end, abort it, or start with RunStartOptions.WhenBusy = SessionBusyBehavior.Supersede.", sessionId, runId))
    {
        SessionId = sessionId;
        RunId = runId;
    }

    /// <summary>Gets the busy session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the id of the run that owned the session when the start was refused.</summary>
    public long RunId { get; }
}
