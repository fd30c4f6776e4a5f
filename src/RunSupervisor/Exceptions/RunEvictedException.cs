using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// Thrown by <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>
/// when the provider did not settle within the grace period after the run was aborted, and the run was
/// force-evicted. The provider's task may still be running: it is tracked in the abandoned ledger
/// (<see cref="ActiveRunRegistry.GetAbandonedRuns"/>) until it settles.
/// </summary>
[SuppressMessage("Design", "CA1032:Implement standard exception constructors", Justification = "The exception always names the session and run that was evicted; one without them would be meaningless.")]
public sealed class RunEvictedException : TimeoutException
{
    /// <summary>Initializes a new instance of the <see cref="RunEvictedException"/> class.</summary>
    /// <param name="sessionId">The session of the run.</param>
    /// <param name="runId">The id of the run.</param>
    /// <param name="age">How long the run had been in the registry when it was evicted.</param>
    public RunEvictedException(string sessionId, long runId, TimeSpan age)
        : base(string.Format(CultureInfo.InvariantCulture, "Run {0} for session '{1}' was force-evicted after {2}: its provider did not settle within the grace period after the abort.", runId, sessionId, age))
    {
        SessionId = sessionId;
        RunId = runId;
        Age = age;
    }

    /// <summary>Gets the session of the run.</summary>
    public string SessionId { get; }

    /// <summary>Gets the id of the run.</summary>
    public long RunId { get; }

    /// <summary>Gets how long the run had been in the registry when it was evicted.</summary>
    public TimeSpan Age { get; }
}
