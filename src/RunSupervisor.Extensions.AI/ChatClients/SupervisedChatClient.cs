using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// A chat client that runs every call of a session as a supervised run of an <see cref="ActiveRunRegistry"/>, so a
/// hung model provider, a stalled stream or a hung tool can never wedge the session: at the run's deadline the inner
/// call is cancelled, and if it still has not settled after the grace period the run is force-evicted and the caller
/// gets <see cref="RunEvictedException"/> instead of waiting forever.
/// </summary>
/// <remarks>
/// <para>Put it outermost in the pipeline (<c>builder.UseRunSupervisor(registry)</c> first), so that one run spans
/// everything inside it, tool calls included.</para>
/// <para><b>Session id.</b> <see cref="ChatOptions.ConversationId"/>, unless
/// <see cref="SupervisedChatClientOptions.SessionIdSelector"/> is set. A call without a session id passes through
/// unsupervised; it is counted on the metric <c>runsupervisor.chat.unsupervised_calls</c> (meter
/// <c>RunSupervisor</c>) and logged at Debug (event 101, <c>UnsupervisedChatCall</c>).</para>
/// <para><b>Cancellation.</b> The inner call receives the run's <see cref="RunHandle.AbortToken"/> (a streaming call, a
/// token linked to it). The caller's token is linked to it: cancelling the caller's token aborts the run, which cancels
/// the abort token and starts the grace period; the caller then gets <see cref="OperationCanceledException"/> carrying
/// its own token once the run has ended.</para>
/// <para>The registry is not owned: disposing this client disposes the inner client, not the registry.</para>
/// </remarks>
public sealed class SupervisedChatClient : DelegatingChatClient
{
    private readonly ActiveRunRegistry _registry;
    private readonly Func<IEnumerable<ChatMessage>, ChatOptions?, string?>? _sessionIdSelector;
    private readonly RunStartOptions? _runStartOptions;
    private readonly ILogger _logger;
    private readonly SupervisedChatClientMetrics _metrics = new();

    /// <summary>Initializes a new instance of the <see cref="SupervisedChatClient"/> class.</summary>
    /// <param name="innerClient">The client whose calls are supervised.</param>
    /// <param name="registry">The registry that owns the sessions' runs. Not disposed with this client.</param>
    /// <param name="options">The options; <see langword="null"/> for the defaults. Read once, here.</param>
    /// <param name="loggerFactory">Creates the logger for unsupervised calls; <see langword="null"/> for no logging.</param>
    /// <exception cref="ArgumentNullException"><paramref name="innerClient"/> or <paramref name="registry"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SupervisedChatClientOptions.BusyBehavior"/> is not a defined value, or a value of <see cref="SupervisedChatClientOptions.RunStartOptions"/> is out of the registry's range (checked here, not at the first call).</exception>
    /// <exception cref="ArgumentException"><see cref="SupervisedChatClientOptions.RunStartOptions"/> sets <see cref="RunStartOptions.WhenBusy"/>.</exception>
    public SupervisedChatClient(IChatClient innerClient, ActiveRunRegistry registry, SupervisedChatClientOptions? options = null, ILoggerFactory? loggerFactory = null)
        : base(innerClient)
    {
        ArgumentNullException.ThrowIfNull(registry);
        options ??= new SupervisedChatClientOptions();
        _runStartOptions = AdapterSupport.ComposeStartOptions(
            registry,
            options.RunStartOptions,
            options.BusyBehavior,
            background: false,
            "SupervisedChatClientOptions.BusyBehavior",
            "SupervisedChatClientOptions.RunStartOptions",
            nameof(options));
        _registry = registry;
        _sessionIdSelector = options.SessionIdSelector;
        _logger = loggerFactory?.CreateLogger<SupervisedChatClient>() ?? NullLogger<SupervisedChatClient>.Instance;
    }

    internal SupervisedChatClientMetrics Metrics => _metrics;

    /// <summary>
    /// Sends the messages as one supervised run of the call's session and returns the response. Outcomes are those of
    /// <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>.
    /// </summary>
    /// <param name="messages">The chat messages.</param>
    /// <param name="options">The chat options; <see cref="ChatOptions.ConversationId"/> is the session id by default.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled.</param>
    /// <returns>The inner client's response.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="messages"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">The session id is empty, white space or too long.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="SupervisedChatClientOptions.BusyBehavior"/> is <see cref="SessionBusyBehavior.Reject"/>.</exception>
    /// <exception cref="RunTimedOutException">The run passed its deadline and the inner call honoured the cancellation.</exception>
    /// <exception cref="RunEvictedException">The inner call did not settle within the grace period after the deadline (a hung provider or tool); the session is free again and the call is in the abandoned ledger.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or a newer run superseded this one.</exception>
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        string? sessionId = SelectSessionId(messages, options, streaming: false);
        return sessionId is null
            ? base.GetResponseAsync(messages, options, cancellationToken)
            : GetSupervisedResponseAsync(sessionId, messages, options, cancellationToken);
    }

    /// <summary>
    /// Streams the response as one supervised run of the call's session. The run starts with the first
    /// <c>MoveNextAsync</c> and spans the whole enumeration; updates do not renew its deadline.
    /// </summary>
    /// <remarks>
    /// <para>The inner stream counts as busy only while one of its own calls (<c>MoveNextAsync</c>,
    /// <c>DisposeAsync</c>) is pending. When the run is aborted between updates (deadline, the caller's token,
    /// <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>, supersede, the registry's disposal) the inner
    /// stream is disposed at once, with or without the consumer, and the run ends with the abort's reason: time the
    /// consumer spends outside the stream never makes the run <see cref="RunEndReason.ForceEvicted"/>.</para>
    /// <para>Nothing is delivered once the run's abort token or the caller's token is cancelled. An inner stream that
    /// ends after the abort (a quiet <c>yield break</c>) was cut off: the consumer gets the end's exception, never
    /// <see langword="false"/>, so a truncated answer cannot pass for a whole one. Ends map to exceptions exactly as for
    /// <see cref="GetResponseAsync(IEnumerable{ChatMessage}, ChatOptions?, CancellationToken)"/>.</para>
    /// <para><see cref="RunContext.Current"/> is the run's context inside every inner call. The inner stream gets a token that is
    /// cancelled with the run's abort token and when the consumer stops early.</para>
    /// </remarks>
    /// <param name="messages">The chat messages.</param>
    /// <param name="options">The chat options; <see cref="ChatOptions.ConversationId"/> is the session id by default.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled, as does the token given to <c>WithCancellation</c>.</param>
    /// <returns>
    /// The inner client's updates. <c>MoveNextAsync</c> returns <see langword="false"/> only when the inner stream
    /// ended on its own and the run <see cref="RunEndReason.Completed"/>. It throws <see cref="RunTimedOutException"/>
    /// when the deadline cut the stream off and it settled within the grace period; <see cref="RunEvictedException"/>
    /// at deadline + grace when a pending inner call did not settle (the consumer never hangs);
    /// <see cref="OperationCanceledException"/> carrying the caller's token once the run has ended (within one grace
    /// period) after the caller cancelled, even if the inner stream ignores its token; an
    /// <see cref="OperationCanceledException"/> when the run was aborted, superseded or the registry disposed; and the
    /// inner stream's own exception, the run ending <see cref="RunEndReason.Faulted"/>.
    /// <see cref="SessionBusyException"/> is thrown by the first <c>MoveNextAsync</c>.
    /// Stopping early (<c>break</c>, disposing the enumerator) cancels the inner stream's token at once and disposes it,
    /// without aborting the run: if the disposal settles within the run's grace period the run ends
    /// <see cref="RunEndReason.Completed"/> (the consumer chose to stop; that is not a failure; a disposal that throws
    /// makes it <see cref="RunEndReason.Faulted"/> and <c>DisposeAsync</c> rethrows); if not, <c>DisposeAsync</c>
    /// returns at the grace period and the run ends <see cref="RunEndReason.Aborted"/> at once, the disposal going on in
    /// the background. So <c>DisposeAsync</c> never waits past the grace period, and never for the run's timeout. With a
    /// zero grace period it does not wait for the disposal at all (which runs on the thread pool, in case it blocks), and
    /// the registry evicts any aborted run at once: unless the disposal has already finished, the run ends
    /// <see cref="RunEndReason.ForceEvicted"/> and stays in the abandoned ledger until it settles, even a disposal that
    /// takes microseconds. Give streams a grace period if an early stop should end <see cref="RunEndReason.Completed"/>.
    /// </returns>
    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        string? sessionId = SelectSessionId(messages, options, streaming: true);
        return sessionId is null
            ? base.GetStreamingResponseAsync(messages, options, cancellationToken)
            : new SupervisedChatStream(InnerClient, _registry, sessionId, messages, options, _runStartOptions, cancellationToken);
    }

    /// <summary>Returns the registry for <see cref="ActiveRunRegistry"/>; otherwise as <see cref="DelegatingChatClient.GetService(Type, object?)"/>.</summary>
    /// <param name="serviceType">The type of service requested.</param>
    /// <param name="serviceKey">An optional key.</param>
    /// <returns>The service, or <see langword="null"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="serviceType"/> is <see langword="null"/>.</exception>
    public override object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is null && serviceType == typeof(ActiveRunRegistry)
            ? _registry
            : base.GetService(serviceType, serviceKey);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _metrics.Dispose();
        }

        base.Dispose(disposing);
    }

    private string? SelectSessionId(IEnumerable<ChatMessage> messages, ChatOptions? options, bool streaming)
    {
        bool fromSelector = _sessionIdSelector is not null;
        string? sessionId = fromSelector ? _sessionIdSelector!(messages, options) : options?.ConversationId;
        if (sessionId is null)
        {
            _metrics.RecordUnsupervised(streaming);
            _logger.UnsupervisedChatCall(
                streaming ? nameof(GetStreamingResponseAsync) : nameof(GetResponseAsync),
                fromSelector ? "SupervisedChatClientOptions.SessionIdSelector" : "ChatOptions.ConversationId");
            return null;
        }

        AdapterSupport.ValidateSessionId(
            sessionId,
            fromSelector ? "SupervisedChatClientOptions.SessionIdSelector" : "ChatOptions.ConversationId",
            fromSelector ? "messages" : "options");
        return sessionId;
    }

    private async Task<ChatResponse> GetSupervisedResponseAsync(string sessionId, IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
    {
        // Awaited here so that SessionBusyException and the run's outcomes all surface through the returned task.
        IChatClient inner = InnerClient;
        return await _registry.RunAsync(
            sessionId,
            abortToken => inner.GetResponseAsync(messages, options, abortToken),
            _runStartOptions,
            cancellationToken).ConfigureAwait(false);
    }
}
