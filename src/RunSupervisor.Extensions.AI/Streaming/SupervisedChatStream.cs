using Microsoft.Extensions.AI;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// The stream <see cref="SupervisedChatClient.GetStreamingResponseAsync"/> returns. Each enumeration is one
/// supervised run (enumerating twice calls the inner client twice, as it would without supervision); nothing
/// starts until the first <c>MoveNextAsync</c>.
/// </summary>
internal sealed class SupervisedChatStream : IAsyncEnumerable<ChatResponseUpdate>
{
    public SupervisedChatStream(
        IChatClient innerClient,
        ActiveRunRegistry registry,
        string sessionId,
        IEnumerable<ChatMessage> messages,
        ChatOptions? options,
        RunStartOptions? runStartOptions,
        CancellationToken cancellationToken)
    {
        InnerClient = innerClient;
        Registry = registry;
        SessionId = sessionId;
        Messages = messages;
        Options = options;
        RunStartOptions = runStartOptions;
        CancellationToken = cancellationToken;
    }

    public IChatClient InnerClient { get; }

    public ActiveRunRegistry Registry { get; }

    public string SessionId { get; }

    public IEnumerable<ChatMessage> Messages { get; }

    public ChatOptions? Options { get; }

    public RunStartOptions? RunStartOptions { get; }

    /// <summary>Gets the token given to <see cref="SupervisedChatClient.GetStreamingResponseAsync"/>.</summary>
    public CancellationToken CancellationToken { get; }

    public IAsyncEnumerator<ChatResponseUpdate> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        => new SupervisedChatStreamEnumerator(this, cancellationToken);
}
