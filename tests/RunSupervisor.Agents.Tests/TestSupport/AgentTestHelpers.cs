namespace RunSupervisor.Agents.Tests.TestSupport;

internal static class AgentTestHelpers
{
    /// <summary>
    /// A real-time bound on awaiting a task the test expects to complete (now, or on a thread-pool continuation). It
    /// only turns a hang into a failure; it is never the behaviour under test.
    /// </summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    /// <summary>One tick of fake time: the smallest step before or past an instant.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    public static Task Guard(this Task task) => task.WaitAsync(HangGuard);

    public static Task<T> Guard<T>(this Task<T> task) => task.WaitAsync(HangGuard);

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

/// <summary>A registry on fake time, with a 10 s timeout and a 5 s grace period, and the run-end events it raised.</summary>
internal sealed class AgentFixture : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly List<RunEndedEventArgs> _ended = [];
    private readonly TaskCompletionSource<RunEndedEventArgs> _firstEnd = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public AgentFixture()
    {
        Registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace }, Time, Logs);
        Registry.RunEnded += (_, e) =>
        {
            lock (_ended)
            {
                _ended.Add(e);
            }

            _firstEnd.TrySetResult(e);
        };
    }

    /// <summary>Gets a task that completes with the first run end: an event-driven wait for ends that happen on the thread pool.</summary>
    public Task<RunEndedEventArgs> FirstEnd => _firstEnd.Task;

    public FakeTimeProvider Time { get; } = new();

    public RecordingLoggerFactory Logs { get; } = new();

    public ActiveRunRegistry Registry { get; }

    public IReadOnlyList<RunEndedEventArgs> Ended
    {
        get
        {
            lock (_ended)
            {
                return [.. _ended];
            }
        }
    }

    public SupervisedAgent Agent(AIAgent inner, Action<SupervisedAgentOptions>? configure = null)
    {
        var options = new SupervisedAgentOptions();
        configure?.Invoke(options);
        return new SupervisedAgent(inner, Registry, options, Logs);
    }

    public void Dispose() => Registry.Dispose();
}
