using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown when a run is started on a session that already has an active run (on this host, or on another host sharing
/// the registry's lease store) and the caller did not ask to supersede it or to wait.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the busy session and its current run; one without them would be meaningless.")]
public sealed class SessionBusyException : InvalidOperationException
{
    /// <summary>Initializes a new instance of the <see cref="SessionBusyException"/> class for a session busy on this host.</summary>
    /// <param name="sessionId">The busy session.</param>
    /// <param name="runId">The id of the run that currently owns the session.</param>
    public SessionBusyException(string sessionId, long runId)
        : this(sessionId, runId, runId, ownerHostId: null)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SessionBusyException"/> class.</summary>
    /// <param name="sessionId">The busy session.</param>
    /// <param name="runId">The id of the run that currently owns the session; 0 when it runs on another host (run ids are per host).</param>
    /// <param name="fencingToken">The owner's fencing token.</param>
    /// <param name="ownerHostId">The host that owns the session; <see langword="null"/> when it is this one.</param>
    public SessionBusyException(string sessionId, long runId, long fencingToken, string? ownerHostId)
        : base(ownerHostId is null
            ? string.Format(CultureInfo.InvariantCulture, "Session '{0}' already has an active run (RunId {1}). Wait for it to end, abort it, or start with RunStartOptions.WhenBusy = SessionBusyBehavior.Supersede.", sessionId, runId)
            : string.Format(CultureInfo.InvariantCulture, "Session '{0}' already has an active run on host '{1}' (fencing token {2}). Wait for it to end, abort it (TryAbortAsync), or start with RunStartOptions.WhenBusy = SessionBusyBehavior.Supersede.", sessionId, ownerHostId, fencingToken))
    {
        SessionId = sessionId;
        RunId = runId;
        FencingToken = fencingToken;
        OwnerHostId = ownerHostId;
    }

    /// <summary>Gets the busy session.</summary>
    public string SessionId { get; }

    /// <summary>Gets the id of the run that owned the session when the start was refused; 0 when it runs on another host.</summary>
    public long RunId { get; }

    /// <summary>Gets the owner's fencing token (without a lease store, its run id).</summary>
    public long FencingToken { get; }

    /// <summary>Gets the host that owns the session; <see langword="null"/> when it is this one.</summary>
    public string? OwnerHostId { get; }
}
