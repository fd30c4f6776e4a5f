namespace RunSupervisor.Agents.Tests.TestSupport;

internal static class AgentTestHelpers
{
    /// <summary>Marks a turn as a background turn (a heartbeat) the default way.</summary>
    public static AgentRunOptions Background() => new()
    {
        AdditionalProperties = new AdditionalPropertiesDictionary { [SupervisedAgentOptions.BackgroundPropertyKey] = true },
    };

    /// <summary>Enumerates the stream to the end (or its exception), calling <paramref name="onUpdate"/> after each update.</summary>
    public static async Task<List<string>> ConsumeAsync(IAsyncEnumerable<AgentResponseUpdate> stream, Action<int>? onUpdate = null, CancellationToken cancellationToken = default)
    {
        var texts = new List<string>();
        await foreach (AgentResponseUpdate update in stream.WithCancellation(cancellationToken))
        {
            texts.Add(update.Text);
            onUpdate?.Invoke(texts.Count);
        }

        return texts;
    }
}

/// <summary>The shared recording registry, plus the supervised agent the agent tests wrap around it.</summary>
internal sealed class AgentFixture : RecordingRegistryFixture
{
    public SupervisedAgent Agent(AIAgent inner, Action<SupervisedAgentOptions>? configure = null)
    {
        var options = new SupervisedAgentOptions();
        configure?.Invoke(options);
        return new SupervisedAgent(inner, Registry, options, Logs);
    }
}
