using System.Runtime.CompilerServices;

namespace RunSupervisor;

/// <summary>
/// One <c>RunAsync</c> call: invokes the provider on the thread pool inside the caller's execution context (with
/// <see cref="RunContext.Current"/> set), hears the run's end directly from the registry, and completes the caller's
/// task on the thread pool. One object does what <c>Task.Run</c>, <c>Unwrap</c>, a completion source and an async
/// state machine did, for a fraction of their allocations.
/// </summary>
/// <remarks>
/// <para>It is queued to invoke the provider, so a provider that blocks its thread never blocks the caller. It completes
/// the caller's task on the thread pool too, so the caller's continuation never runs on the thread that ended the run,
/// which may be the watchdog's: queued again by the run's end, unless the run ended as the provider's returned task was
/// attached (it had already completed), on the invoking thread: that thread then completes the caller's task itself
/// once the invocation has returned, instead of paying a second pool hop. Only the attaching counts: a run that ends
/// while the provider still runs (a provider aborting its own run with no grace period, say) is answered the queued
/// way, so a provider that then blocks its thread never holds the caller. It is queued too when the run's leaving
/// admitted waiting starts (the invoking thread publishes them, and runs their replaced runs' handlers, before it is
/// free), and when the caller suppressed flow (the provider may have left its ambient state on the thread).</para>
/// <para>The caller's task comes from an <see cref="AsyncTaskMethodBuilder{TResult}"/>, as an <c>async</c> method's
/// would: an <see cref="OperationCanceledException"/> makes it cancelled with that very exception, and the provider's
/// own exceptions surface unchanged.</para>
/// </remarks>
/// <typeparam name="T">The provider's result type; <see cref="NoResult"/> for providers without one.</typeparam>
internal sealed class SupervisedInvocation<T> : IThreadPoolWorkItem, IRunEndObserver
{
    private const int NotInvoked = 0;
    private const int Invoked = 1;
    private const int EndedWhileAttaching = 2;

    private static readonly ContextCallback InvokeInContext = static state => ((SupervisedInvocation<T>)state!).Invoke();

    // The invocation whose provider task this thread is attaching to its run, while it does: thread-static rather than
    // a field, so the per-call object does not grow for it. Another thread never sees this one's value.
    [ThreadStatic]
    private static SupervisedInvocation<T>? t_attaching;

    // Covariant: a Func<CancellationToken, Task<T>> is a Func<CancellationToken, Task>.
    private readonly Func<CancellationToken, Task> _provider;
    private readonly CancellationToken _callerToken;
    private readonly ExecutionContext? _executionContext;
    private AsyncTaskMethodBuilder<T> _builder;
    private CancellationTokenRegistration _callerRegistration;
    private RunEntry? _entry;
    private bool _waited;
    private Task? _providerTask;

    // NotInvoked, then Invoked by the first execution (Interlocked), then EndedWhileAttaching if the run ended as this
    // thread attached the provider's task (written by that thread only, and then nothing is queued a second time).
    private int _invoked;

    public SupervisedInvocation(Func<CancellationToken, Task> provider, CancellationToken callerToken)
    {
        _provider = provider;
        _callerToken = callerToken;
        _executionContext = ExecutionContext.Capture();
        _builder = AsyncTaskMethodBuilder<T>.Create();

        // Read once here, before any other thread can complete the builder: its task is created lazily and not thread-safely.
        Task = _builder.Task;
    }

    /// <summary>Gets the caller's task.</summary>
    public Task<T> Task { get; }

    /// <summary>Binds the started run and queues the provider's invocation.</summary>
    /// <param name="entry">The run.</param>
    /// <param name="waited">
    /// Whether the start waited for admission: a caller that cancels before the provider gets its thread then cancelled
    /// while it waited, as far as it can tell (its task had not heard of the admission), so the provider never runs.
    /// </param>
    public void Begin(RunEntry entry, bool waited = false)
    {
        _entry = entry;
        _waited = waited;
        if (_callerToken.CanBeCanceled)
        {
            _callerRegistration = _callerToken.UnsafeRegister(static state => ((RunEntry)state!).Owner.Abort((RunEntry)state!, RunEnds.CallerCancelledText), entry);

            // Ended before the registration was stored (superseded on another thread): its end may have read no
            // registration, so this thread unregisters. Store, full fence, then look, paired with OnRunEnded, which
            // looks at the registration after the end is written and a full fence: one of the two sees the other, so a
            // long-lived caller token never keeps a registration for a run that has ended.
            Interlocked.MemoryBarrier();
            if (entry.HasEnded)
            {
                _callerRegistration.Unregister();
            }
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
    }

    /// <summary>
    /// Queued by <see cref="Begin(RunEntry, bool)"/> and, unless the run ended as the provider's task was attached, by the
    /// run's end, in either order: the first execution invokes the provider (or, if the run has already ended, only
    /// lets it leave the ledger), the second completes the caller's task.
    /// </summary>
    public void Execute()
    {
        if (Interlocked.Exchange(ref _invoked, Invoked) != NotInvoked)
        {
            Complete();
            return;
        }

        if (_executionContext is null)
        {
            // The caller suppressed flow: the provider runs in the pool thread's own (default) context, which the pool
            // restores after every work item, the run's context with it.
            Invoke();
        }
        else
        {
            ExecutionContext.Run(_executionContext, InvokeInContext, this);
        }

        if (_invoked == EndedWhileAttaching)
        {
            if (_executionContext is null)
            {
                // The provider ran in this thread's own context and may have left its ambient state on it (an AsyncLocal,
                // a SynchronizationContext) for the caller's continuation to run under: the pool resets both between
                // work items, so the caller's task is completed from a work item of its own.
                ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
                return;
            }

            // ExecutionContext.Run has put the caller's context and synchronization context back on this thread.
            Complete();
        }
    }

    void IRunEndObserver.OnRunEnded(RunEntry entry, bool morePublishing)
    {
        // The run may end (superseded, disposed) before Begin has bound it.
        _entry = entry;

        // Unregister, not Dispose: the end may be published from inside the caller's own cancellation callback. The
        // fence pairs with Begin's (see there); a token that cannot be cancelled has no registration.
        if (_callerToken.CanBeCanceled)
        {
            Interlocked.MemoryBarrier();
            _callerRegistration.Unregister();
        }
        if (!morePublishing && ReferenceEquals(t_attaching, this))
        {
            // Ended by attaching a completed provider task, on the invoking pool thread, with nothing else to publish:
            // Execute completes the caller's task once the invocation has returned. When the run's leaving admitted
            // waiting starts, this thread publishes them (and the ends of the runs they replaced, with their handlers)
            // first, so the caller's task is completed from a work item of its own instead of waiting for that.
            _invoked = EndedWhileAttaching;
            return;
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
    }

    private static InvalidOperationException NullProviderTask() => new("The provider returned a null Task.");

    private void Invoke()
    {
        RunEntry entry = _entry!;
        bool withdrawn = _waited && _callerToken.IsCancellationRequested;
        if (withdrawn && !entry.HasEnded)
        {
            // The caller's registration may not have run yet (a token cancelled with CancelAsync runs it on the pool):
            // the run ends as the caller's cancellation either way, never Completed.
            entry.Owner.Abort(entry, RunEnds.CallerCancelledText);
        }

        if (withdrawn || entry.HasEnded)
        {
            // Superseded, disposed or withdrawn by its caller before the provider got a thread: it never runs, and the
            // run leaves the ledger.
            entry.Owner.Release(entry);
            return;
        }

        RunContext.SetCurrent(new RunContext(entry));
        Task providerTask;
        try
        {
            providerTask = _provider(entry.Token) ?? throw NullProviderTask();
        }
#pragma warning disable CA1031 // A provider that throws synchronously ends its run Faulted with that very exception, as Task.Run would.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            providerTask = System.Threading.Tasks.Task.FromException(ex);
        }

        Volatile.Write(ref _providerTask, providerTask);
        SupervisedInvocation<T>? outer = t_attaching;
        t_attaching = this;
        try
        {
            entry.Owner.Attach(entry, providerTask);
        }
        finally
        {
            t_attaching = outer;
        }
    }

    private void Complete()
    {
        Task? providerTask = Volatile.Read(ref _providerTask);
        if (RunEnds.ToCallerException(_entry!, providerTask, _callerToken) is { } error)
        {
            _builder.SetException(error);
            return;
        }

        // The provider settled and its own outcome stands: its result, its exception, its cancellation.
        switch (providerTask!.Status)
        {
            case TaskStatus.RanToCompletion:
                _builder.SetResult(providerTask is Task<T> typed ? typed.Result : default!);
                break;
            case TaskStatus.Canceled:
                _builder.SetException(RunEnds.CanceledFrom(providerTask) ?? new TaskCanceledException(providerTask));
                break;
            default:
                _builder.SetException(providerTask.Exception!.InnerException!);
                break;
        }
    }
}
