namespace RunSupervisor;

/// <summary>
/// The supervised run the current code executes on behalf of: set while a provider of
/// <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>,
/// a supervised chat call or a supervised agent run executes, so that tool functions deep inside can read the
/// <see cref="FencingToken"/> to fence their writes, and the <see cref="AbortToken"/> to stop.
/// </summary>
/// <remarks>
/// <see cref="Current"/> flows with the <see cref="ExecutionContext"/> (an <see cref="AsyncLocal{T}"/>): into the
/// provider's awaits and the tasks it starts, not back to the caller. It is <see langword="null"/> elsewhere.
/// Instances are immutable and thread-safe.
/// </remarks>
public sealed class RunContext
{
    private static readonly AsyncLocal<RunContext?> CurrentContext = new();

    private readonly RunEntry _entry;

    internal RunContext(RunEntry entry) => _entry = entry;

    /// <summary>Gets the context of the supervised run the calling code executes in, or <see langword="null"/> outside one.</summary>
    public static RunContext? Current => CurrentContext.Value;

    /// <summary>Gets the run's session.</summary>
    public string SessionId => _entry.SessionId;

    /// <summary>Gets the run's id.</summary>
    public long RunId => _entry.RunId;

    /// <summary>Gets the run's fencing token (see <see cref="RunHandle.FencingToken"/>); without a lease store it equals <see cref="RunId"/>.</summary>
    public long FencingToken => _entry.FencingToken;

    /// <summary>Gets the token the provider was given: cancelled when the run is aborted, times out or is ended by the registry.</summary>
    public CancellationToken AbortToken => _entry.Token;

    /// <summary>Makes <paramref name="context"/> the current one for this execution context and what flows from it.</summary>
    /// <param name="context">The context, or <see langword="null"/> to clear it.</param>
    internal static void SetCurrent(RunContext? context) => CurrentContext.Value = context;

    /// <summary>Returns a short description of the context for debugging.</summary>
    /// <returns>The session id, run id and fencing token.</returns>
    public override string ToString() => $"Run {RunId} (session '{SessionId}', fencing token {FencingToken})";
}
