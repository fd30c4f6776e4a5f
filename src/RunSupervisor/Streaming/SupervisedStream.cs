namespace RunSupervisor;

/// <summary>
/// A stream whose every enumeration is one supervised run of a session: nothing starts until the first
/// <c>MoveNextAsync</c>, and enumerating twice opens the inner stream twice, as it would without supervision.
/// The chat-client and the agent middleware derive from it and only say how to open their inner stream, so the
/// walk-away, progress and end-mapping logic of <see cref="SupervisedStreamEnumerator{T}"/> exists once.
/// </summary>
/// <typeparam name="T">The type of the streamed updates.</typeparam>
internal abstract class SupervisedStream<T> : IAsyncEnumerable<T>
{
    /// <summary>Initializes a new instance of the <see cref="SupervisedStream{T}"/> class.</summary>
    /// <param name="registry">The registry that owns the session's runs.</param>
    /// <param name="sessionId">The session; already validated.</param>
    /// <param name="runStartOptions">The per-run options; already validated against <paramref name="registry"/>.</param>
    /// <param name="cancellationToken">The token given to the call that returned this stream.</param>
    protected SupervisedStream(ActiveRunRegistry registry, string sessionId, RunStartOptions? runStartOptions, CancellationToken cancellationToken)
    {
        Registry = registry;
        SessionId = sessionId;
        RunStartOptions = runStartOptions;
        CancellationToken = cancellationToken;
    }

    public ActiveRunRegistry Registry { get; }

    public string SessionId { get; }

    public RunStartOptions? RunStartOptions { get; }

    /// <summary>Gets the token given to the call that returned this stream.</summary>
    public CancellationToken CancellationToken { get; }

    public IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        => new SupervisedStreamEnumerator<T>(this, cancellationToken);

    /// <summary>
    /// Opens the inner stream. Called once per enumeration, on the thread pool, with <see cref="RunContext.Current"/>
    /// set to the run.
    /// </summary>
    /// <param name="stopToken">Cancelled with the run's abort token, and when the consumer stops early.</param>
    /// <returns>The inner stream.</returns>
    protected internal abstract IAsyncEnumerable<T> OpenInner(CancellationToken stopToken);
}
