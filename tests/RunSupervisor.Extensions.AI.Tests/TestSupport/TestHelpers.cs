namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

internal static class TestHelpers
{
    public static ChatMessage[] Prompt { get; } = [new(ChatRole.User, "hello")];

    public static ChatOptions Conversation(string id) => new() { ConversationId = id };

    /// <summary>Enumerates the stream to the end (or its exception), calling <paramref name="onUpdate"/> after each update.</summary>
    public static async Task<List<string>> ConsumeAsync(IAsyncEnumerable<ChatResponseUpdate> stream, Action<int>? onUpdate = null, CancellationToken cancellationToken = default)
    {
        var texts = new List<string>();
        await foreach (ChatResponseUpdate update in stream.WithCancellation(cancellationToken))
        {
            texts.Add(update.Text);
            onUpdate?.Invoke(texts.Count);
        }

        return texts;
    }
}

/// <summary>The shared recording registry, plus the supervised chat client the chat-client tests wrap around it.</summary>
internal sealed class RegistryFixture(TimeSpan? grace = null) : RecordingRegistryFixture(grace)
{
    public SupervisedChatClient Client(IChatClient inner, Action<SupervisedChatClientOptions>? configure = null, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null)
    {
        var options = new SupervisedChatClientOptions();
        configure?.Invoke(options);
        return new SupervisedChatClient(inner, Registry, options, loggerFactory);
    }
}
