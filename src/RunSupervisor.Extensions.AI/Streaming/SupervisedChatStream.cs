using Microsoft.Extensions.AI;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// The stream <see cref="SupervisedChatClient.GetStreamingResponseAsync"/> returns: the core's supervised stream over
/// the inner client's streaming call. Each enumeration is one supervised run; nothing starts until the first
/// <c>MoveNextAsync</c>.
/// </summary>
internal sealed class SupervisedChatStream : SupervisedStream<ChatResponseUpdate>
{
    private readonly IChatClient _innerClient;
    private readonly IEnumerable<ChatMessage> _messages;
    private readonly ChatOptions? _options;

    public SupervisedChatStream(
        IChatClient innerClient,
        ActiveRunRegistry registry,
        string sessionId,
        IEnumerable<ChatMessage> messages,
        ChatOptions? options,
        RunStartOptions? runStartOptions,
        CancellationToken cancellationToken)
        : base(registry, sessionId, runStartOptions, cancellationToken)
    {
        _innerClient = innerClient;
        _messages = messages;
        _options = options;
    }

    protected internal override IAsyncEnumerable<ChatResponseUpdate> OpenInner(CancellationToken stopToken)
        => _innerClient.GetStreamingResponseAsync(_messages, _options, stopToken);
}
