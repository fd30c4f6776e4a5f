namespace RunSupervisor;

public sealed partial class ActiveRunRegistry
{
    /// <summary>
    /// Runs <paramref name="provider"/> as the session's supervised run and returns its result. The run never
    /// outlives the watchdog: this method completes by the run's deadline plus its grace period at the latest,
    /// whatever the provider does.
    /// </summary>
    /// <typeparam name="T">The provider's result type.</typeparam>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="provider">
    /// The provider call. It is invoked on the calling thread (like any async method, it runs synchronously until
    /// its first await) and receives the run's <see cref="RunHandle.AbortToken"/>.
    /// </param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled; the method then completes once the run has ended.</param>
    /// <returns>The provider's result. A provider that completes successfully after its abort still returns its result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="provider"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.Supersede"/> is not set.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunTimedOutException">The run passed its deadline and the provider honoured the cancellation.</exception>
    /// <exception cref="RunEvictedException">The provider did not settle within the grace period; the run was force-evicted and the provider's task is in the abandoned ledger.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or the run was aborted or superseded and the provider honoured it.</exception>
    public Task<T> RunAsync<T>(string sessionId, Func<CancellationToken, Task<T>> provider, RunStartOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        (RunHandle run, Task providerTask) = StartSupervised(sessionId, provider, static (p, token) => ((Func<CancellationToken, Task<T>>)p)(token), options);
        return AwaitResultAsync<T>(run, providerTask, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="provider"/> as the session's supervised run. The run never outlives the watchdog:
    /// this method completes by the run's deadline plus its grace period at the latest, whatever the provider does.
    /// </summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="provider">
    /// The provider call. It is invoked on the calling thread (like any async method, it runs synchronously until
    /// its first await) and receives the run's <see cref="RunHandle.AbortToken"/>.
    /// </param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled; the method then completes once the run has ended.</param>
    /// <returns>A task that completes when the run has ended.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="provider"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.Supersede"/> is not set.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunTimedOutException">The run passed its deadline and the provider honoured the cancellation.</exception>
    /// <exception cref="RunEvictedException">The provider did not settle within the grace period; the run was force-evicted and the provider's task is in the abandoned ledger.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or the run was aborted or superseded and the provider honoured it.</exception>
    public Task RunAsync(string sessionId, Func<CancellationToken, Task> provider, RunStartOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        (RunHandle run, Task providerTask) = StartSupervised(sessionId, provider, static (p, token) => ((Func<CancellationToken, Task>)p)(token), options);
        return AwaitOutcomeAsync(run, providerTask, cancellationToken);
    }

    private (RunHandle Run, Task ProviderTask) StartSupervised(string sessionId, object provider, Func<object, CancellationToken, Task?> invoke, RunStartOptions? options)
    {
        RunHandle run = Start(sessionId, options);
        Task providerTask;
        try
        {
            providerTask = invoke(provider, run.AbortToken) ?? Task.FromException(new InvalidOperationException("The provider returned a null Task."));
        }
#pragma warning disable CA1031 // A provider that throws before returning its task is a faulted run, reported through the returned task.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            providerTask = Task.FromException(ex);
        }

        run.Attach(providerTask);
        return (run, providerTask);
    }

    private static async Task<T> AwaitResultAsync<T>(RunHandle run, Task providerTask, CancellationToken cancellationToken)
    {
        await AwaitOutcomeAsync(run, providerTask, cancellationToken).ConfigureAwait(false);
        return ((Task<T>)providerTask).Result;
    }

    /// <summary>Waits for the run to leave the registry and turns how it left into the caller's outcome.</summary>
    private static async Task AwaitOutcomeAsync(RunHandle run, Task providerTask, CancellationToken cancellationToken)
    {
        RunEndReason reason;
        using (cancellationToken.UnsafeRegister(static state => ((RunHandle)state!).Abort("the caller's cancellation token was cancelled"), run))
        {
            reason = await run.Completion.ConfigureAwait(false);
        }

        switch (reason)
        {
            case RunEndReason.ForceEvicted:
                throw new RunEvictedException(run.SessionId, run.RunId, TimeSpan.FromTicks(run.EndedAtTicks - run.StartedAtTicks));
            case RunEndReason.Superseded:
                throw new OperationCanceledException($"Run {run.RunId} for session '{run.SessionId}' was superseded by a newer run.", run.AbortToken);
        }

        if (!providerTask.IsCompleted)
        {
            // Only the registry's disposal ends a supervised run before its provider settles.
            throw new OperationCanceledException($"Run {run.RunId} for session '{run.SessionId}' ended ({reason}) before its provider settled.", run.AbortToken);
        }

        if (providerTask.IsCanceled || providerTask.Exception?.InnerException is OperationCanceledException)
        {
            if (reason == RunEndReason.TimedOut)
            {
                throw new RunTimedOutException(run.SessionId, run.RunId, run.Deadline - run.StartedAt, providerTask.Exception?.InnerException ?? CanceledFrom(providerTask));
            }

            cancellationToken.ThrowIfCancellationRequested();
        }

        // Success returns; any other outcome rethrows the provider's own exception with its stack trace.
        await providerTask.ConfigureAwait(false);
    }

    private static OperationCanceledException? CanceledFrom(Task task)
    {
        try
        {
            task.GetAwaiter().GetResult();
            return null;
        }
        catch (OperationCanceledException ex)
        {
            return ex;
        }
    }
}
