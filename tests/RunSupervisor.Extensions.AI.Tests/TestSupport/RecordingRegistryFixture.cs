namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

/// <summary>
/// A registry on fake time, with a 10 s timeout and a 5 s grace period (unless a derived fixture passes another), and
/// the run-end events it raised. The chat-client and agent fixtures derive from it and add only the wrapper they
/// build over <see cref="Registry"/>; it is linked into the agent tests so both suites drive the same registry setup.
/// </summary>
internal abstract class RecordingRegistryFixture : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly List<RunEndedEventArgs> _ended = [];
    private readonly TaskCompletionSource<RunEndedEventArgs> _firstEnd = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected RecordingRegistryFixture(TimeSpan? grace = null)
    {
        Registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = grace ?? Grace }, Time, Logs);
        Registry.RunEnded += (_, e) =>
        {
            // Runs end on thread-pool continuations as well as on the test's thread, so the list is guarded.
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

    /// <summary>Gets the registry's log lines, and those of any wrapper a derived fixture hands this factory to.</summary>
    public RecordingLoggerFactory Logs { get; } = new();

    public ActiveRunRegistry Registry { get; }

    /// <summary>Gets a snapshot of the run ends raised so far, in the order they were raised.</summary>
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

    public void Dispose() => Registry.Dispose();
}
