using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;

namespace RunSupervisor.Agents;

/// <summary>
/// The stream <see cref="SupervisedAgent"/>'s streaming turn returns: the core's supervised stream over the inner
/// agent's streaming turn. Each enumeration is one supervised run; nothing starts until the first <c>MoveNextAsync</c>.
/// </summary>
internal sealed class SupervisedAgentStream : SupervisedStream<AgentResponseUpdate>
{
    private readonly AIAgent _innerAgent;
    private readonly IEnumerable<ChatMessage> _messages;
    private readonly AgentSession? _session;
    private readonly AgentRunOptions? _options;

    public SupervisedAgentStream(
        AIAgent innerAgent,
        ActiveRunRegistry registry,
        string sessionId,
        IEnumerable<ChatMessage> messages,
        AgentSession? session,
        AgentRunOptions? options,
        RunStartOptions? runStartOptions,
        CancellationToken cancellationToken)
        : base(registry, sessionId, runStartOptions, cancellationToken)
    {
        _innerAgent = innerAgent;
        _messages = messages;
        _session = session;
        _options = options;
    }

    protected internal override IAsyncEnumerable<AgentResponseUpdate> OpenInner(CancellationToken stopToken)
        => _innerAgent.RunStreamingAsync(_messages, _session, _options, stopToken);
}
