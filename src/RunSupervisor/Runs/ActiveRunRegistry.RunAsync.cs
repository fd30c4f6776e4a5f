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
    /// The provider call. It is invoked on the thread pool (never inline in this call, and without the caller's
    /// <see cref="SynchronizationContext"/>; the caller's <see cref="ExecutionContext"/> flows) once the run is
    /// registered, and receives the run's <see cref="RunHandle.AbortToken"/>. So a provider that blocks its thread
    /// synchronously delays neither this method's return nor the watchdog. A provider that throws, or returns a
    /// <see langword="null"/> task (<see cref="InvalidOperationException"/>), makes the run end
    /// <see cref="RunEndReason.Faulted"/> and the returned task fail with that exception.
    /// </param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled (the method then completes once the run has ended), or, while the start waits for admission, cancels the start: the provider is never invoked.</param>
    /// <returns>The provider's result. A provider that completes successfully after its abort still returns its result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="provider"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.WhenBusy"/> is <see cref="SessionBusyBehavior.Reject"/>.</exception>
    /// <exception cref="RunQueueTimeoutException">The start waited (<see cref="SessionBusyBehavior.Wait"/>, or a full lane) longer than its queue timeout; the provider was never invoked.</exception>
    /// <exception cref="RunQueueFullException">The session's queue is full, or the waiting start was pushed out of it; the provider was never invoked.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunTimedOutException">The run passed its deadline and the provider honoured the cancellation.</exception>
    /// <exception cref="RunEvictedException">The provider did not settle within the grace period; the run was force-evicted and the provider's task is in the abandoned ledger.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or the run was superseded (at once), or aborted and the provider honoured it.</exception>
    /// <exception cref="Leasing.RunLeaseUnavailableException">With a lease store failing closed, the store did not answer the start's acquire in time; the provider was never invoked.</exception>
    public Task<T> RunAsync<T>(string sessionId, Func<CancellationToken, Task<T>> provider, RunStartOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Bad options throw whatever the token says, as a bad session id does.
            ValidateStartOptions(options);

            return Task.FromCanceled<T>(cancellationToken);
        }

        // On the thread pool: a provider that blocks before its first await must not block this caller (the watchdog
        // never waits for the provider, and neither does RunAsync).
        var invocation = new SupervisedInvocation<T>(provider, cancellationToken);
        return Run(sessionId, invocation, options, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="provider"/> as the session's supervised run. The run never outlives the watchdog:
    /// this method completes by the run's deadline plus its grace period at the latest, whatever the provider does.
    /// </summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="provider">
    /// The provider call. It is invoked on the thread pool (never inline in this call, and without the caller's
    /// <see cref="SynchronizationContext"/>; the caller's <see cref="ExecutionContext"/> flows) once the run is
    /// registered, and receives the run's <see cref="RunHandle.AbortToken"/>. So a provider that blocks its thread
    /// synchronously delays neither this method's return nor the watchdog. A provider that throws, or returns a
    /// <see langword="null"/> task (<see cref="InvalidOperationException"/>), makes the run end
    /// <see cref="RunEndReason.Faulted"/> and the returned task fail with that exception.
    /// </param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <param name="cancellationToken">Aborts the run when cancelled (the method then completes once the run has ended), or, while the start waits for admission, cancels the start: the provider is never invoked.</param>
    /// <returns>A task that completes when the run has ended.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> or <paramref name="provider"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.WhenBusy"/> is <see cref="SessionBusyBehavior.Reject"/>.</exception>
    /// <exception cref="RunQueueTimeoutException">The start waited (<see cref="SessionBusyBehavior.Wait"/>, or a full lane) longer than its queue timeout; the provider was never invoked.</exception>
    /// <exception cref="RunQueueFullException">The session's queue is full, or the waiting start was pushed out of it; the provider was never invoked.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="RunTimedOutException">The run passed its deadline and the provider honoured the cancellation.</exception>
    /// <exception cref="RunEvictedException">The provider did not settle within the grace period; the run was force-evicted and the provider's task is in the abandoned ledger.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or the run was superseded (at once), or aborted and the provider honoured it.</exception>
    /// <exception cref="Leasing.RunLeaseUnavailableException">With a lease store failing closed, the store did not answer the start's acquire in time; the provider was never invoked.</exception>
    public Task RunAsync(string sessionId, Func<CancellationToken, Task> provider, RunStartOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Bad options throw whatever the token says, as a bad session id does.
            ValidateStartOptions(options);

            return Task.FromCanceled(cancellationToken);
        }

        // On the thread pool, like the generic overload: see there.
        var invocation = new SupervisedInvocation<NoResult>(provider, cancellationToken);
        return Run(sessionId, invocation, options, cancellationToken);
    }

    /// <summary>Starts the invocation's run and hands the run to it; the part both overloads share.</summary>
    private Task<T> Run<T>(string sessionId, SupervisedInvocation<T> invocation, RunStartOptions? options, CancellationToken cancellationToken)
    {
        if (_leaseStore is null)
        {
            // Admitted at once, or refused at once (thrown here, before any task exists, as from Start); the invocation
            // holds the run's entry, so no ticket is made for it.
            RunEntry? entry = StartInvocation(sessionId, options, invocation, cancellationToken, out Task<RunHandle>? waiting);
            if (entry is null)
            {
                return AdmitThenRunAsync(new ValueTask<RunHandle>(waiting!), invocation);
            }

            invocation.Begin(entry);
            return invocation.Task;
        }

        ValueTask<RunHandle> start = StartAsyncCore(sessionId, options, invocation, cancellationToken);
        if (!start.IsCompleted)
        {
            return AdmitThenRunAsync(start, invocation);
        }

        // Admitted at once, or refused at once: a refusal is thrown here, before any task exists, as from Start.
        invocation.Begin(start.Result.Entry);
        return invocation.Task;
    }

    /// <summary>The waiting path of RunAsync: the provider is invoked only once the start is admitted, never if it gives up.</summary>
    private static async Task<T> AdmitThenRunAsync<T>(ValueTask<RunHandle> start, SupervisedInvocation<T> invocation)
    {
        RunHandle run = await start.ConfigureAwait(false);
        invocation.Begin(run.Entry, waited: true);
        return await invocation.Task.ConfigureAwait(false);
    }
}
