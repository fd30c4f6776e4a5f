using System.Runtime.CompilerServices;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RunSupervisor.Agents;

/// <summary>
/// An agent that runs every turn of a session as one supervised run of an <see cref="ActiveRunRegistry"/>: the whole
/// turn, model calls and tool calls included. So a hung model provider, a stalled stream or a hung tool can never
/// wedge the session: at the run's deadline the turn is cancelled, and if it still has not settled after the grace
/// period the run is force-evicted, the caller gets <see cref="RunEvictedException"/> and the session takes its next
/// turn.
/// </summary>
/// <remarks>
/// <para>Put it outermost (<c>agent.AsBuilder().UseRunSupervisor(registry)</c> first), so that one run spans
/// everything inside it.</para>
/// <para><b>Session id.</b> By default a stable id kept in the <see cref="AgentSession"/>'s state
/// (<see cref="GetSessionId(AgentSession)"/>), created with the session when this agent creates it (else on its first supervised turn); it is serialized with
/// the session, so a session restored with <c>DeserializeSessionAsync</c> is the same session.
/// <see cref="SupervisedAgentOptions.SessionIdSelector"/> replaces it. A turn without a session id (by default, a turn
/// without a session) passes through unsupervised; it is counted on the metric
/// <c>runsupervisor.agent.unsupervised_runs</c> (the registry's meter <c>RunSupervisor</c>) and logged at Debug
/// (event 201, <c>UnsupervisedAgentRun</c>).</para>
/// <para><b>Cancellation.</b> The inner agent receives the run's <see cref="RunHandle.AbortToken"/> (a streaming
/// turn, a token linked to it). Cancelling the caller's token aborts the run; the caller then gets
/// <see cref="OperationCanceledException"/> carrying its own token once the run has ended (for a stream whose call token
/// and enumerator token can both be cancelled, the token Agent Framework links from the two before this agent sees them).</para>
/// <para><see cref="RunContext.Current"/> is the turn's run inside the inner agent, so tool functions can read its
/// <see cref="RunContext.FencingToken"/> and <see cref="RunContext.AbortToken"/>.</para>
/// <para>The registry is not owned.</para>
/// </remarks>
public sealed class SupervisedAgent : DelegatingAIAgent
{
    /// <summary>The <see cref="AgentSession.StateBag"/> key under which the default session id is kept.</summary>
    internal const string SessionIdStateKey = "runsupervisor.session_id";

    private const string SelectorSource = "SupervisedAgentOptions.SessionIdSelector";
    private const string StateSource = "the AgentSession's state";

    // Only the first turn of a session takes it (to create the id once when two turns race); later turns read the id
    // without it.
    private static readonly Lock SessionIdGate = new();

    private readonly ActiveRunRegistry _registry;
    private readonly Func<AgentSession?, AgentRunOptions?, string?>? _sessionIdSelector;
    private readonly Func<AgentSession?, AgentRunOptions?, bool>? _backgroundSelector;
    private readonly RunStartOptions? _foreground;
    private readonly RunStartOptions _background;
    private readonly ILogger _logger;
    private readonly SupervisedAgentMetrics _metrics;

    /// <summary>Initializes a new instance of the <see cref="SupervisedAgent"/> class.</summary>
    /// <param name="innerAgent">The agent whose turns are supervised.</param>
    /// <param name="registry">The registry that owns the sessions' runs.</param>
    /// <param name="options">The options; <see langword="null"/> for the defaults. Read once, here.</param>
    /// <param name="loggerFactory">Creates the logger for unsupervised turns; <see langword="null"/> for no logging.</param>
    /// <exception cref="ArgumentNullException"><paramref name="innerAgent"/> or <paramref name="registry"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SupervisedAgentOptions.WhenBusy"/> is not a defined value, or a value of <see cref="SupervisedAgentOptions.RunStartOptions"/> is out of the registry's range (checked here, not at the first turn).</exception>
    /// <exception cref="ArgumentException"><see cref="SupervisedAgentOptions.RunStartOptions"/> sets <see cref="RunStartOptions.WhenBusy"/> or <see cref="RunStartOptions.Background"/>, or names an unknown lane.</exception>
    public SupervisedAgent(AIAgent innerAgent, ActiveRunRegistry registry, SupervisedAgentOptions? options = null, ILoggerFactory? loggerFactory = null)
        : base(innerAgent)
    {
        ArgumentNullException.ThrowIfNull(registry);
        options ??= new SupervisedAgentOptions();
        if (options.RunStartOptions is { Background: true })
        {
            throw new ArgumentException(
                "SupervisedAgentOptions.RunStartOptions.Background must be left at false: mark background turns with SupervisedAgentOptions.BackgroundSelector or the AgentRunOptions.AdditionalProperties key SupervisedAgentOptions.BackgroundPropertyKey.",
                nameof(options));
        }

        // Both shapes are composed and validated now, so a turn only picks one of them.
        const string WhenBusyOption = "SupervisedAgentOptions.WhenBusy";
        const string PerRunOption = "SupervisedAgentOptions.RunStartOptions";
        _foreground = AdapterSupport.ComposeStartOptions(registry, options.RunStartOptions, options.WhenBusy, background: false, WhenBusyOption, PerRunOption, nameof(options));
        _background = AdapterSupport.ComposeStartOptions(registry, options.RunStartOptions, options.WhenBusy, background: true, WhenBusyOption, PerRunOption, nameof(options))!;
        _registry = registry;
        _sessionIdSelector = options.SessionIdSelector;
        _backgroundSelector = options.BackgroundSelector;
        _logger = loggerFactory?.CreateLogger<SupervisedAgent>() ?? NullLogger<SupervisedAgent>.Instance;
        _metrics = new SupervisedAgentMetrics(registry);
    }

    /// <summary>
    /// Returns the session id a <see cref="SupervisedAgent"/> uses by default for <paramref name="session"/>: a stable id
    /// kept in its <see cref="AgentSession.StateBag"/>, created with the session when this agent creates it, else on first
    /// use. It is serialized with the session, so a
    /// host can use it with the registry (<see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>,
    /// <see cref="ActiveRunRegistry.IsActive(string)"/>) and across a restore.
    /// </summary>
    /// <param name="session">The session.</param>
    /// <returns>The session id.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="session"/> is <see langword="null"/>.</exception>
    public static string GetSessionId(AgentSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (TryReadSessionId(session, out string? id))
        {
            return id;
        }

        lock (SessionIdGate)
        {
            if (TryReadSessionId(session, out id))
            {
                return id;
            }

            id = Guid.NewGuid().ToString("N");
            session.StateBag.SetValue(SessionIdStateKey, id, AgentAbstractionsJsonUtilities.DefaultOptions);
            return id;
        }
    }

    /// <summary>
    /// Creates a session through the inner agent and gives it its session id at once: a host that stores a new session
    /// before its first turn and restores it for each request then has every copy carry the same id, rather than each
    /// copy making its own on first use (and two concurrent turns of one conversation going unsupervised as two).
    /// </summary>
    /// <param name="cancellationToken">Cancels the creation.</param>
    /// <returns>The session.</returns>
    protected override async ValueTask<AgentSession> CreateSessionCoreAsync(CancellationToken cancellationToken = default)
    {
        AgentSession session = await base.CreateSessionCoreAsync(cancellationToken).ConfigureAwait(false);
        _ = GetSessionId(session);
        return session;
    }

    /// <summary>Returns the registry for <see cref="ActiveRunRegistry"/>; otherwise as <see cref="DelegatingAIAgent.GetService(Type, object?)"/>.</summary>
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

    internal SupervisedAgentMetrics Metrics => _metrics;

    /// <summary>
    /// Runs the turn as one supervised run of its session. Outcomes are those of
    /// <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>:
    /// the inner agent's response or exception, <see cref="SessionBusyException"/>, <see cref="RunQueueTimeoutException"/>,
    /// <see cref="RunTimedOutException"/>, <see cref="RunEvictedException"/> at deadline + grace, or
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    /// <param name="messages">The messages.</param>
    /// <param name="session">The session; without one (by default) the turn is unsupervised.</param>
    /// <param name="options">The run options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled.</param>
    /// <returns>The inner agent's response.</returns>
    protected override Task<AgentResponse> RunCoreAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        string? sessionId = SelectSessionId(session, options, streaming: false);
        return sessionId is null
            ? InnerAgent.RunAsync(messages, session, options, cancellationToken)
            : RunSupervisedAsync(sessionId, messages, session, options, cancellationToken);
    }

    /// <summary>
    /// Streams the turn as one supervised run of its session, from the first <c>MoveNextAsync</c> until the inner
    /// stream has settled. Each update is progress for the idle timeout; updates never renew the deadline.
    /// </summary>
    /// <remarks>
    /// The consumer never waits past deadline + grace on a stalled inner <c>MoveNextAsync</c>; nothing is delivered
    /// once the run is aborted or the caller cancelled; a stream cut off by its run's end ends with the end's exception,
    /// never quietly; disposing the enumerator ends the run. The ends are those of <c>SupervisedChatClient</c>'s
    /// streaming, mapped by the same core function.
    /// </remarks>
    /// <param name="messages">The messages.</param>
    /// <param name="session">The session; without one (by default) the turn is unsupervised.</param>
    /// <param name="options">The run options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled, as does the token given to <c>WithCancellation</c>.</param>
    /// <returns>The inner agent's updates.</returns>
    protected override IAsyncEnumerable<AgentResponseUpdate> RunCoreStreamingAsync(IEnumerable<ChatMessage> messages, AgentSession? session = null, AgentRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        string? sessionId = SelectSessionId(session, options, streaming: true);
        return sessionId is null
            ? InnerAgent.RunStreamingAsync(messages, session, options, cancellationToken)
            : new SupervisedAgentStream(InnerAgent, _registry, sessionId, messages, session, options, StartOptionsFor(session, options), cancellationToken);
    }

    private static bool TryReadSessionId(AgentSession session, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? id)
        => session.StateBag.TryGetValue(SessionIdStateKey, out id, AgentAbstractionsJsonUtilities.DefaultOptions) && id is not null;

    private RunStartOptions? StartOptionsFor(AgentSession? session, AgentRunOptions? options)
    {
        bool background = _backgroundSelector is not null
            ? _backgroundSelector(session, options)
            : options?.AdditionalProperties?.TryGetValue(SupervisedAgentOptions.BackgroundPropertyKey, out object? marker) == true && marker is true;
        return background ? _background : _foreground;
    }

    private string? SelectSessionId(AgentSession? session, AgentRunOptions? options, bool streaming)
    {
        bool fromSelector = _sessionIdSelector is not null;
        string? sessionId = fromSelector ? _sessionIdSelector!(session, options) : session is null ? null : GetSessionId(session);
        if (sessionId is null)
        {
            _metrics.RecordUnsupervised(streaming);
            _logger.UnsupervisedAgentRun(
                streaming ? nameof(RunStreamingAsync) : nameof(RunAsync),
                fromSelector ? $"{SelectorSource} returned null" : "it has no AgentSession");
            return null;
        }

        AdapterSupport.ValidateSessionId(sessionId, fromSelector ? SelectorSource : StateSource, nameof(session));
        return sessionId;
    }

    private Task<AgentResponse> RunSupervisedAsync(string sessionId, IEnumerable<ChatMessage> messages, AgentSession? session, AgentRunOptions? options, CancellationToken cancellationToken)
    {
        AIAgent inner = InnerAgent;
        try
        {
            return _registry.RunAsync(
                sessionId,
                abortToken => inner.RunAsync(messages, session, options, abortToken),
                StartOptionsFor(session, options),
                cancellationToken);
        }
        catch (Exception error)
        {
            // RunAsync refuses synchronously (a busy session, a full queue, a disposed registry); a turn reports every
            // outcome through its task, as an async method would (a cancellation as a cancelled task), without paying
            // for an async state machine on every turn.
            AsyncTaskMethodBuilder<AgentResponse> builder = AsyncTaskMethodBuilder<AgentResponse>.Create();
            builder.SetException(error);
            return builder.Task;
        }
    }
}
