using System.Collections.Concurrent;
using Polly;

namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>
/// The peer a user would build: the same dictionary of active runs (value: a <see cref="CancellationTokenSource"/> so
/// the host can abort a session's run) and a Polly v8 <see cref="ResiliencePipeline"/> with a timeout strategy around
/// the provider call.
/// </summary>
/// <remarks>
/// Polly's timeout is cooperative: it cancels the token and then waits for the callback, so a provider that ignores
/// cancellation holds its dictionary entry for ever — the failure RunSupervisor exists to prevent. There is no grace
/// period, eviction, run identity or ledger here; the comparison is of cost only.
/// </remarks>
public sealed class PollyPeer : IDisposable
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _runs = new(StringComparer.Ordinal);
    private readonly ResiliencePipeline _pipeline;
    private readonly TaskCompletionSource _hang = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _warmRuns = [];

    /// <summary>Initializes a new instance of the <see cref="PollyPeer"/> class.</summary>
    /// <param name="timeout">Each run's timeout.</param>
    public PollyPeer(TimeSpan timeout)
    {
        _pipeline = new ResiliencePipelineBuilder().AddTimeout(timeout).Build();
    }

    /// <summary>Gets the number of active runs.</summary>
    public int Count => _runs.Count;

    /// <summary>Case (a): start and release on an idle session: the pipeline executes a delegate that has already completed.</summary>
    /// <param name="sessionId">The session.</param>
    public void StartAndRelease(string sessionId)
    {
        var abort = new CancellationTokenSource();
        if (!_runs.TryAdd(sessionId, abort))
        {
            abort.Dispose();
            throw new InvalidOperationException($"Session '{sessionId}' is busy.");
        }

        try
        {
            ValueTask execution = _pipeline.ExecuteAsync(static _ => ValueTask.CompletedTask, abort.Token);

            // The delegate completed synchronously, so the execution has too: no thread is blocked here.
            execution.GetAwaiter().GetResult();
        }
        finally
        {
            _runs.TryRemove(sessionId, out _);
            abort.Dispose();
        }
    }

    /// <summary>Case (b): runs <paramref name="provider"/> through the pipeline as the session's run.</summary>
    /// <typeparam name="T">The provider's result type.</typeparam>
    /// <param name="sessionId">The session.</param>
    /// <param name="provider">The provider call.</param>
    /// <returns>The provider's result.</returns>
    public async Task<T> RunAsync<T>(string sessionId, Func<CancellationToken, Task<T>> provider)
    {
        var abort = new CancellationTokenSource();
        if (!_runs.TryAdd(sessionId, abort))
        {
            abort.Dispose();
            throw new InvalidOperationException($"Session '{sessionId}' is busy.");
        }

        try
        {
            return await _pipeline.ExecuteAsync(
                static (state, token) => new ValueTask<T>(state(token)),
                provider,
                abort.Token).ConfigureAwait(false);
        }
        finally
        {
            _runs.TryRemove(sessionId, out _);
            abort.Dispose();
        }
    }

    /// <summary>
    /// Case (b) with RunSupervisor's guarantee that a provider which blocks its thread never blocks the caller: the
    /// pipeline runs on the thread pool (<see cref="Task.Run{TResult}(Func{Task{TResult}})"/>), as a user would write it.
    /// </summary>
    /// <typeparam name="T">The provider's result type.</typeparam>
    /// <param name="sessionId">The session.</param>
    /// <param name="provider">The provider call.</param>
    /// <returns>The provider's result.</returns>
    public async Task<T> RunOnPoolAsync<T>(string sessionId, Func<CancellationToken, Task<T>> provider)
    {
        var abort = new CancellationTokenSource();
        if (!_runs.TryAdd(sessionId, abort))
        {
            abort.Dispose();
            throw new InvalidOperationException($"Session '{sessionId}' is busy.");
        }

        try
        {
            return await Task.Run(() => _pipeline.ExecuteAsync(
                static (state, token) => new ValueTask<T>(state(token)),
                provider,
                abort.Token).AsTask()).ConfigureAwait(false);
        }
        finally
        {
            _runs.TryRemove(sessionId, out _);
            abort.Dispose();
        }
    }

    /// <summary>Case (c): whether the session has a run.</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns><see langword="true"/> if a run owns the session.</returns>
    public bool IsActive(string sessionId) => _runs.ContainsKey(sessionId);

    /// <summary>
    /// Fills the dictionary with <paramref name="count"/> runs in flight: each is a pipeline execution whose provider
    /// has not answered yet (so each holds Polly's timeout machinery, as a real in-flight call does).
    /// </summary>
    /// <param name="sessionIds">The sessions to occupy.</param>
    public void AddHangingRuns(IEnumerable<string> sessionIds)
    {
        ArgumentNullException.ThrowIfNull(sessionIds);
        foreach (string sessionId in sessionIds)
        {
            var abort = new CancellationTokenSource();
            if (!_runs.TryAdd(sessionId, abort))
            {
                abort.Dispose();
                throw new InvalidOperationException($"Session '{sessionId}' is busy.");
            }

            _warmRuns.Add(_pipeline.ExecuteAsync(static (hang, _) => new ValueTask(hang.Task), _hang, abort.Token).AsTask());
        }
    }

    /// <summary>Lets every hanging run finish and disposes the sources.</summary>
    public void Dispose()
    {
        _hang.TrySetResult();
        Task.WaitAll(_warmRuns);
        foreach (KeyValuePair<string, CancellationTokenSource> entry in _runs)
        {
            entry.Value.Dispose();
        }

        _runs.Clear();
    }
}
