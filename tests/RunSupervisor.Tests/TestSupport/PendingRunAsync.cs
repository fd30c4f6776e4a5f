namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// The arrangement most RunAsync tests share: a call on the fixture's registry whose provider returns a task the test
/// settles by hand, started, its run found in the registry, and its provider invoked (on the thread pool) with the
/// run's abort token.
/// </summary>
internal sealed class PendingRunAsync
{
    private PendingRunAsync(Task call, TaskCompletionSource<int> provider, RunInfo run, CancellationToken token)
    {
        Call = call;
        Provider = provider;
        Run = run;
        Token = token;
    }

    /// <summary>Gets the RunAsync call: it completes when the run ends.</summary>
    public Task Call { get; }

    /// <summary>Gets the provider's task source: pending until the test settles it.</summary>
    public TaskCompletionSource<int> Provider { get; }

    /// <summary>Gets the run as the registry listed it right after RunAsync returned.</summary>
    public RunInfo Run { get; }

    /// <summary>Gets the token the provider was invoked with (the run's abort token).</summary>
    public CancellationToken Token { get; }

    /// <summary>
    /// Starts RunAsync (the <c>Task&lt;T&gt;</c> overload when <paramref name="generic"/>, else the <c>Task</c> one), finds
    /// its run, and waits (bounded by <see cref="TestTime.HangGuard"/>) until the provider has been invoked.
    /// </summary>
    public static async Task<PendingRunAsync> StartAsync(RegistryFixture fixture, bool generic, string sessionId)
    {
        var invoked = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        var provider = new TaskCompletionSource<int>();
        Task call = fixture.Registry.InvokeRunAsync(generic, sessionId, ct =>
        {
            invoked.SetResult(ct);
            return provider.Task;
        });
        if (!fixture.Registry.TryGetRun(sessionId, out RunInfo? run))
        {
            throw new InvalidOperationException($"RunAsync on '{sessionId}' registered no run.");
        }

        CancellationToken token = await invoked.Task.WaitAsync(TestTime.HangGuard);
        return new PendingRunAsync(call, provider, run, token);
    }
}
