using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;

namespace RunSupervisor;

/// <summary>
/// One supervised enumeration of a <see cref="SupervisedStream{T}"/>: one run, from the first <see cref="MoveNextAsync"/> until the inner
/// stream has settled.
/// </summary>
/// <remarks>
/// <para><b>What the run waits for.</b> The run is tied (through <see cref="RunHandle.Attach(Task)"/>) to
/// <see cref="_settled"/>, which settles once the inner stream has ended and been disposed. The inner stream only
/// counts as busy while one of its own calls is pending: an inner <c>MoveNextAsync</c>, or its <c>DisposeAsync</c>.
/// Between updates, while the consumer holds the stream, nothing is pending; if the run is aborted then (deadline,
/// the caller's token, <c>TryAbort</c>, supersede, the registry's disposal) the inner stream is disposed at once,
/// without the consumer, and the run ends with its abort's reason. So a slow consumer never makes a well-behaved
/// provider look hung (<see cref="RunEndReason.ForceEvicted"/>), and an abandoned enumerator never holds the run or
/// the abandoned ledger past the inner stream's own pending call.</para>
/// <para><b>Phases.</b> <see cref="_phase"/> says who may touch the inner stream: the consumer starts a move from
/// <see cref="Idle"/>; whoever moves it from <see cref="Idle"/> (or a finished move from <see cref="Moving"/>) to
/// <see cref="Stopping"/> disposes the inner stream and settles the run, exactly once. The abort callback only ever
/// takes <see cref="Idle"/>, so it never disposes an inner stream under a pending <c>MoveNextAsync</c>.</para>
/// <para><b>Truth.</b> Nothing is delivered once the run's abort token is cancelled or the caller's is; an inner
/// stream that ends (<c>yield break</c>) after the abort has been cut off, so its end settles the run as cancelled and
/// the consumer gets the end's exception, never <see langword="false"/>. Every end is turned into the consumer's
/// exception by the core's <c>RunEnds.ToCallerException</c>, as <c>RunAsync</c> does.</para>
/// <para>Like any enumerator it is not thread-safe: one <see cref="MoveNextAsync"/> or <see cref="DisposeAsync"/> at
/// a time.</para>
/// </remarks>
/// <typeparam name="T">The type of the streamed updates.</typeparam>
internal sealed class SupervisedStreamEnumerator<T> : IAsyncEnumerator<T>, IValueTaskSource<bool>, IThreadPoolWorkItem, IRunEndObserver
{
    /// <summary>No inner call is pending: the consumer holds the stream between two updates.</summary>
    private const int Idle = 0;

    /// <summary>An inner <c>MoveNextAsync</c> is pending.</summary>
    private const int Moving = 1;

    /// <summary>The inner stream is being disposed and the run settled; final.</summary>
    private const int Stopping = 2;

    /// <summary>The consumer has no <see cref="MoveNextAsync"/> pending, or the one pending has been answered.</summary>
    private const int NotWaiting = 0;

    /// <summary>The consumer waits for an inner move, or for the run's end if that comes first.</summary>
    private const int AwaitingMove = 1;

    /// <summary>The stream is over and the consumer waits for the run's end.</summary>
    private const int AwaitingEnd = 2;

    private static readonly Action<object?> OnAbortedCallback = static state => ((SupervisedStreamEnumerator<T>)state!).OnAborted();
    private static readonly Action<SupervisedStreamEnumerator<T>> AnswerAtEndCallback = static enumerator => enumerator.AnswerAtEnd();

    // The enumerator whose run this thread is settling, while it does: an end published during the settling is answered
    // by this thread once the settling returns, rather than from a work item of its own. Thread-static, so the
    // enumerator does not grow for it; another thread never sees this one's value.
    [ThreadStatic]
    private static SupervisedStreamEnumerator<T>? t_settling;
    private static readonly ContextCallback MoveInnerCallback = static state => ((SupervisedStreamEnumerator<T>)state!).MoveInner();
    private static readonly ContextCallback DisposeInnerCallback = static state =>
    {
        var enumerator = (SupervisedStreamEnumerator<T>)state!;
        enumerator._innerDisposal = enumerator._inner!.DisposeAsync().AsTask();
    };

    private readonly SupervisedStream<T> _stream;
    private readonly CancellationToken _enumeratorToken;

    // Created once: the continuation of every pending inner move.
    private readonly Action _onInnerMoved;

    // A method builder, not a TaskCompletionSource: a cancellation settles it cancelled with that very exception (as
    // an async method would), so the consumer and RunTimedOutException.InnerException see the inner stream's own one.
    // Its continuations run inline: settling it ends the run at once (the registry's continuation is synchronous).
    private readonly Task _settled;
    private AsyncTaskMethodBuilder _settledBuilder;
    private int _settledOnce;

    // What the consumer's pending MoveNextAsync returns; reused for every update, so an update allocates nothing. Its
    // continuation runs inline on the thread that answers it, as an await of the inner move's task would.
    private ManualResetValueTaskSourceCore<bool> _answer;
    private int _waiting;

    // 1 once the registry has handed this enumerator its run's end (IRunEndObserver). Set before the consumer's wait is
    // looked at, and the consumer publishes its wait before it looks at this: with full fences on both sides, at least
    // one of them sees the other, so a wait is always answered.
    private int _ended;

    private RunHandle? _run;
    private RunContext? _context;

    // The consumer's context at the first move; after it, that context with RunContext.Current set: every inner call
    // runs in it.
    private ExecutionContext? _innerContext;
    private ConfiguredValueTaskAwaitable<bool>.ConfiguredValueTaskAwaiter _innerMove;
    private Task? _innerDisposal;

    // Given to the inner stream: cancelled with the run's abort token, and by a consumer that stops early (which must
    // stop the inner stream at once without aborting the run, so that a prompt stop still ends it Completed).
    private CancellationTokenSource? _innerStop;
    private IAsyncEnumerator<T>? _inner;
    private CancellationTokenRegistration _abortRegistration;
    private CancellationTokenRegistration _streamTokenRegistration;
    private CancellationTokenRegistration _enumeratorTokenRegistration;
    private T? _current;
    private bool _hasCurrent;
    private T? _next;
    private int _phase;
    private volatile bool _consumerGone;
    private State _state;

    public SupervisedStreamEnumerator(SupervisedStream<T> stream, CancellationToken enumeratorToken)
    {
        _stream = stream;
        _enumeratorToken = enumeratorToken;
        _settledBuilder = AsyncTaskMethodBuilder.Create();
        _onInnerMoved = OnInnerMoved;

        // Read once here, before any other thread can complete the builder: its task is created lazily and not thread-safely.
        _settled = _settledBuilder.Task;
    }

    private enum State
    {
        NotStarted,
        Streaming,
        Finished,
    }

    public T Current => _hasCurrent ? _current! : throw new InvalidOperationException("MoveNextAsync has not returned true.");

    public ValueTask<bool> MoveNextAsync() => _state switch
    {
        State.Streaming => Move(),
        State.NotStarted => StartAndMove(),
        _ => new ValueTask<bool>(false),
    };

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _answer.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _answer.OnCompleted(continuation, state, token, flags);

    bool IValueTaskSource<bool>.GetResult(short token) => _answer.GetResult(token);

    /// <summary>Runs one inner move on the thread pool, in the inner context.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        if (_innerContext is { } context)
        {
            ExecutionContext.Run(context, MoveInnerCallback, this);
        }
        else
        {
            // The consumer suppressed the flow of its context: the inner calls run in the pool's default one, with only
            // the run's context set (the pool resets it after this work item).
            RunContext.SetCurrent(_context);
            MoveInner();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_state != State.Streaming)
        {
            // Perhaps the first MoveNextAsync still waits for admission: once admitted, its move sees the consumer gone
            // and ends the run at once, without opening the inner stream.
            _consumerGone = true;
            _state = State.Finished;
            return;
        }

        Finish();
        RunHandle run = _run!;
        int phase = Interlocked.CompareExchange(ref _phase, Stopping, Idle);
        if (phase != Idle)
        {
            // Stopping: an abort got there first and its end stands. Moving: a MoveNextAsync left pending, which
            // `await using` does once the consumer's own per-update timeout gives up on it.
            _consumerGone = true;
            if (phase == Moving)
            {
                await StopPendingMoveAsync(run).ConfigureAwait(false);
            }

            return;
        }

        // The consumer stopped early. The inner stream is told to stop at once and disposed; the run is not aborted,
        // because the consumer choosing to stop is not a failure: a disposal that settles within the grace period
        // ends the run Completed.
        Task dispose = DisposeInnerAsync(cancelFirst: true);
        if (!dispose.IsCompleted)
        {
            await WithinGraceAsync(run, dispose).ConfigureAwait(false);
        }

        if (dispose.IsCompleted)
        {
            // A disposal that throws the cancellation it was asked for has still settled.
            Exception? disposeError = dispose.Exception?.InnerException;
            disposeError = disposeError is OperationCanceledException ? null : disposeError;
            SettleAndRelease(disposeError);
            if (disposeError is not null)
            {
                ExceptionDispatchInfo.Throw(disposeError);
            }

            return;
        }

        // Not settled within the grace period: the run ends Aborted now (the consumer does not wait any longer) and
        // the disposal goes on in the background; the run is settled when it finishes. With a zero grace period the
        // registry evicts an aborted run at once, so there the run ends ForceEvicted and sits in the abandoned ledger.
        run.Abort(RunEnds.ConsumerStoppedText);
        run.Dispose();
        _ = SettleWhenDisposedAsync(dispose);
    }

    /// <summary>
    /// Stops the inner stream under a MoveNextAsync the consumer gave up on: its move is cancelled, and its step ends the
    /// run (<see cref="RunEndReason.Completed"/>: the consumer chose to stop) once the move settles. As for a disposal
    /// between updates, the consumer waits for that at most the grace period; after it the run ends
    /// <see cref="RunEndReason.Aborted"/> and the move is left to the watchdog.
    /// </summary>
    private async ValueTask StopPendingMoveAsync(RunHandle run)
    {
        try
        {
            // Not awaited: the inner stream's cancellation callbacks are provider code and may block.
            _ = _innerStop!.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // The move's step has settled the run meanwhile.
        }

        // The move may have gone back to Idle before it could see the consumer gone: then it is stopped here.
        StopFromIdle(run);
        if (run.Completion.IsCompleted)
        {
            return;
        }

        await WithinGraceAsync(run, run.Completion).ConfigureAwait(false);

        if (!run.Completion.IsCompleted)
        {
            run.Abort(RunEnds.ConsumerStoppedText);
            run.Dispose();
        }
    }

    private static CancellationTokenRegistration AbortOnCancel(RunHandle run, CancellationToken token) =>
        token.UnsafeRegister(static state => ((RunHandle)state!).Abort(RunEnds.CallerCancelledText), run);

    private static TimeSpan GracePeriod(RunHandle run) => TimeSpan.FromTicks(run.Entry.GraceTicks);

    /// <summary>Waits for <paramref name="settled"/> or the run's end, at most the run's grace period: how long a stopping consumer waits.</summary>
    private async Task WithinGraceAsync(RunHandle run, Task settled)
    {
        using var timer = new CancellationTokenSource();
        Task grace = Task.Delay(GracePeriod(run), _stream.Registry.TimeProvider, timer.Token);
        await Task.WhenAny(settled, grace, run.Completion).ConfigureAwait(false);
        await timer.CancelAsync().ConfigureAwait(false);
    }

    private ValueTask<bool> StartAndMove()
    {
        // A start that admits at once completes synchronously: then the first move is like every other one.
        ValueTask start = StartAsync();
        return start.IsCompletedSuccessfully ? Move() : StartThenMoveAsync(start);
    }

    private async ValueTask<bool> StartThenMoveAsync(ValueTask start)
    {
        await start.ConfigureAwait(false);
        return await Move().ConfigureAwait(false);
    }

    /// <summary>Asks the inner stream for its next update, unless the stream must stop.</summary>
    private ValueTask<bool> Move()
    {
        RunHandle run = _run!;
        if (ShouldStop(run) || Interlocked.CompareExchange(ref _phase, Moving, Idle) != Idle)
        {
            // Between updates the run was aborted or ended, or the caller cancelled: nothing more is delivered.
            StopFromIdle(run);
            return AwaitEnd();
        }

        // The consumer asking for more is the provider's turn: its idle clock restarts now and runs only while the
        // inner call is pending.
        run.ReportProgress();
        _answer.Reset();
        Interlocked.Exchange(ref _waiting, AwaitingMove);

        // On the thread pool: an inner stream that blocks its thread must not block the consumer, whose wait is bounded
        // by the watchdog through the run's end (OnRunEnded answers it).
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);

        // A run that ended after ShouldStop looked, but before the wait above was published, found no wait to answer:
        // answered here (the move still runs, and its step stops the inner stream).
        AnswerIfEnded();

        return new ValueTask<bool>(this, _answer.Version);
    }

    /// <summary>
    /// The stream is over. The run ends once the inner stream has settled, or at the latest when the watchdog evicts
    /// it, one grace period after its abort: the consumer never waits longer.
    /// </summary>
    private ValueTask<bool> AwaitEnd()
    {
        Finish();
        _answer.Reset();
        Interlocked.Exchange(ref _waiting, AwaitingEnd);
        AnswerIfEnded();

        return new ValueTask<bool>(this, _answer.Version);
    }

    /// <summary>Starts an inner move, in the inner context; its step follows when it completes.</summary>
    private void MoveInner()
    {
        try
        {
            // Opened lazily, on the thread pool like every inner call, so a source that does work before returning its
            // stream does not block the consumer either.
            CancellationToken token = _innerStop!.Token;
            _inner ??= _stream.OpenInner(token).GetAsyncEnumerator(token);
#pragma warning disable CA2012 // Kept to be awaited by hand: OnInnerMoved reads its result exactly once.
            _innerMove = _inner.MoveNextAsync().ConfigureAwait(false).GetAwaiter();
#pragma warning restore CA2012
        }
#pragma warning disable CA1031 // Captured to settle the run with it; the consumer rethrows it from the settled task.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Step(hasUpdate: false, ex);
            return;
        }

        if (_innerMove.IsCompleted)
        {
            OnInnerMoved();
        }
        else
        {
            _innerMove.UnsafeOnCompleted(_onInnerMoved);
        }
    }

    private void OnInnerMoved()
    {
        bool hasUpdate = false;
        Exception? error = null;
        try
        {
            hasUpdate = _innerMove.GetResult();

            // Read here, before the stream can be handed back to Idle (after which an abort may dispose it).
            if (hasUpdate)
            {
                _next = _inner!.Current;
            }
        }
#pragma warning disable CA1031 // Captured to settle the run with it; the consumer rethrows it from the settled task.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            hasUpdate = false;
            error = ex;
        }

        _innerMove = default;
        Step(hasUpdate, error);
    }

    /// <summary>
    /// Decides after one inner move, whether or not the consumer still waits: deliver the update (back to
    /// <see cref="Idle"/>), or stop the inner stream and settle the run. Never throws.
    /// </summary>
    private void Step(bool hasUpdate, Exception? error)
    {
        RunHandle run = _run!;
        if (hasUpdate)
        {
            // Back to Idle first, then look: an abort whose callback found the stream Moving is seen here, and one
            // that comes later finds it Idle and stops it itself (full fences on both sides). The update is delivered
            // only if nothing has stopped the stream meanwhile (the caller's cancellation, an abort, the run's end):
            // what arrives after that is never shown.
            Interlocked.Exchange(ref _phase, Idle);
            if (!ShouldStop(run))
            {
                // A streamed update is progress: the idle timeout is a stream idle timeout, distinct from the deadline.
                // Until the consumer asks for the next one the turn is the consumer's, so the idle clock stops: a slow
                // consumer never makes a well-behaved provider look stalled (the deadline still counts all time).
                run.Entry.PauseIdleClock(run.Entry.Owner.NowTicks());
                _current = _next;
                _hasCurrent = true;
                if (Interlocked.CompareExchange(ref _waiting, NotWaiting, AwaitingMove) == AwaitingMove)
                {
                    _answer.SetResult(true);
                    return;
                }
            }

            // Not delivered: stopped meanwhile, or the consumer was already answered by the run's end.
            StopFromIdle(run);
        }
        else
        {
            // Only a finished move leaves Moving, so this step owns the stop. An end after the abort is a cut-off stream.
            Volatile.Write(ref _phase, Stopping);
            if (error is null && run.AbortToken.IsCancellationRequested)
            {
                error = new OperationCanceledException(run.AbortToken);
            }
            else if (error is OperationCanceledException && _consumerGone && !run.AbortToken.IsCancellationRequested)
            {
                // The cancellation the departing consumer asked for: the stream stopped as told, which is no failure.
                error = null;
            }

            _ = StopAsync(error, innerEndedHere: true);
        }

        if (Interlocked.CompareExchange(ref _waiting, AwaitingEnd, AwaitingMove) == AwaitingMove)
        {
            Finish();
            AnswerIfEnded();
        }
    }

    /// <summary>
    /// The run's end, handed over once by the registry on the thread that ended the run (perhaps the watchdog's):
    /// answers a consumer still waiting, for a move or for the end, from the thread pool, so the consumer's
    /// continuation never runs on that thread. An end published while this enumerator's own step settles the run is
    /// answered by that step, once the settling returns.
    /// </summary>
    void IRunEndObserver.OnRunEnded(RunEntry entry, bool morePublishing)
    {
        Interlocked.Exchange(ref _ended, 1);
        if (!ReferenceEquals(t_settling, this) && Volatile.Read(ref _waiting) != NotWaiting)
        {
            ThreadPool.UnsafeQueueUserWorkItem(AnswerAtEndCallback, this, preferLocal: false);
        }
    }

    /// <summary>
    /// The waiting side of the end's protocol: called after the consumer's wait is published (with a full fence), answers
    /// it if the run has ended, because the end may have looked for a wait before this one was published.
    /// </summary>
    private void AnswerIfEnded()
    {
        if (Volatile.Read(ref _ended) != 0)
        {
            AnswerAtEnd();
        }
    }

    /// <summary>Answers the consumer's wait with the end of the stream, if it still waits; once per wait.</summary>
    private void AnswerAtEnd()
    {
        if (Interlocked.Exchange(ref _waiting, NotWaiting) == NotWaiting)
        {
            return;
        }

        Finish();
        bool result;
        try
        {
            result = EndOfStream(_run!);
        }
#pragma warning disable CA1031 // Handed to the consumer, who rethrows it from its MoveNextAsync.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _answer.SetException(ex);
            return;
        }

        _answer.SetResult(result);
    }

    private async ValueTask StartAsync()
    {
        // Finished until the run has started: a failed start leaves nothing to clean up.
        _state = State.Finished;
        _stream.CancellationToken.ThrowIfCancellationRequested();
        _enumeratorToken.ThrowIfCancellationRequested();
        RunHandle run = await StartRunAsync().ConfigureAwait(false);
        _run = run;
        _context = new RunContext(run.Entry);
        _innerStop = CancellationTokenSource.CreateLinkedTokenSource(run.AbortToken);
        CaptureInnerContext();
        run.Attach(_settled);
        _state = State.Streaming;

        // Registered last: each may run at once (a run superseded already, a token cancelled already).
        _abortRegistration = run.AbortToken.UnsafeRegister(OnAbortedCallback, this);
        _streamTokenRegistration = AbortOnCancel(run, _stream.CancellationToken);
        _enumeratorTokenRegistration = AbortOnCancel(run, _enumeratorToken);
    }

    /// <summary>Starts the run; with <see cref="SessionBusyBehavior.Wait"/> it may wait, cancelled by either of the caller's tokens.</summary>
    private async ValueTask<RunHandle> StartRunAsync()
    {
        if (!_enumeratorToken.CanBeCanceled || !_stream.CancellationToken.CanBeCanceled)
        {
            CancellationToken token = _enumeratorToken.CanBeCanceled ? _enumeratorToken : _stream.CancellationToken;
            return await _stream.Registry.StartObservedAsync(_stream.SessionId, _stream.RunStartOptions, this, token).ConfigureAwait(false);
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(_stream.CancellationToken, _enumeratorToken);
        try
        {
            return await _stream.Registry.StartObservedAsync(_stream.SessionId, _stream.RunStartOptions, this, either.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (CallerCancelled())
        {
            // The consumer hears its own token, not the link between its two.
            throw new OperationCanceledException("The call was cancelled while it waited for admission; it never ran.", CallerToken());
        }
    }

    private CancellationToken CallerToken() =>
        _stream.CancellationToken.IsCancellationRequested ? _stream.CancellationToken : _enumeratorToken;

    private bool CallerCancelled() => _stream.CancellationToken.IsCancellationRequested || _enumeratorToken.IsCancellationRequested;

    /// <summary>Whether nothing more may be delivered: the run was aborted or has ended, the caller cancelled, or the consumer is gone.</summary>
    private bool ShouldStop(RunHandle run)
    {
        if (CallerCancelled())
        {
            // The registration aborts the run too, but perhaps not yet on the cancelling thread: the abort's reason
            // must be the caller's either way.
            run.Abort(RunEnds.CallerCancelledText);
            return true;
        }

        return run.AbortToken.IsCancellationRequested || Volatile.Read(ref _ended) != 0 || _consumerGone;
    }

    /// <summary>The abort token's callback: stops the inner stream if it is between updates.</summary>
    private void OnAborted() => StopFromIdle(_run!);

    /// <summary>
    /// Stops the inner stream if no inner call is pending (otherwise the pending call's step does), settling the run
    /// as cancelled by its abort; or, for a consumer that went away without an abort, as finished. Never throws.
    /// </summary>
    private void StopFromIdle(RunHandle run)
    {
        if (Interlocked.CompareExchange(ref _phase, Stopping, Idle) == Idle)
        {
            _ = StopAsync(_consumerGone && !run.AbortToken.IsCancellationRequested ? null : new OperationCanceledException(run.AbortToken));
        }
    }

    /// <summary>
    /// The context every inner call runs in: the consumer's at the first move, with <see cref="RunContext.Current"/>
    /// set to the run (and flowing into the inner calls' awaits).
    /// </summary>
    private void CaptureInnerContext()
    {
        if (ExecutionContext.Capture() is { } consumer)
        {
            ExecutionContext.Run(
                consumer,
                static state =>
                {
                    var enumerator = (SupervisedStreamEnumerator<T>)state!;
                    RunContext.SetCurrent(enumerator._context);
                    enumerator._innerContext = ExecutionContext.Capture();
                },
                this);
        }
    }

    /// <summary>Disposes the inner stream and settles the run with <paramref name="outcome"/>, or with the disposal's own error. Never throws.</summary>
    /// <param name="outcome">The run's outcome: <see langword="null"/> for success, a cancellation, or the inner stream's error.</param>
    /// <param name="innerEndedHere">
    /// Whether this thread is the one that saw the inner stream end: then it disposes the stream itself (no consumer and
    /// no watchdog waits on it); otherwise the disposal goes to the thread pool.
    /// </param>
    private async Task StopAsync(Exception? outcome, bool innerEndedHere = false)
    {
        try
        {
            await (innerEndedHere ? DisposeEndedInner() : DisposeInnerAsync(cancelFirst: false)).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A disposal error is handed to the run (so logged and observed by the registry), never lost.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            outcome ??= ex;
        }

        SettleAndRelease(outcome, answerHere: innerEndedHere);
    }

    /// <summary>Settles the run once a disposal that outlived the consumer's wait finishes. Never throws.</summary>
    private async Task SettleWhenDisposedAsync(Task dispose)
    {
        Exception? error = null;
        try
        {
            await dispose.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Background clean-up: the error is handed to the run, never rethrown.
        catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
        {
            error = ex;
        }
        catch (OperationCanceledException)
        {
            // It was asked to stop: a cancellation is how it settled.
        }

        SettleAndRelease(error);
    }

    /// <summary>Disposes an inner stream that has ended, on this thread, as the run's code.</summary>
    private Task DisposeEndedInner()
    {
        if (_inner is null || _innerContext is null)
        {
            return DisposeInnerAsync(cancelFirst: false);
        }

        ExecutionContext.Run(_innerContext, DisposeInnerCallback, this);
        return _innerDisposal!;
    }

    /// <summary>Disposes the inner stream on the thread pool (it may block its thread) as the run's code, after stopping it if asked.</summary>
    private Task DisposeInnerAsync(bool cancelFirst)
    {
        IAsyncEnumerator<T>? inner = _inner;
        if (inner is null && !cancelFirst)
        {
            return Task.CompletedTask;
        }

        // Started in the inner context, since Task.Run captures the current one: the disposal is an inner call whoever
        // stops the stream (the consumer after changing its own context, an aborting thread of another flow, the watchdog).
        if (_innerContext is { } context)
        {
            Task? started = null;
            ExecutionContext.Run(context, _ => started = RunDisposal(inner, cancelFirst), null);
            return started!;
        }

        using (ExecutionContext.SuppressFlow())
        {
            return RunDisposal(inner, cancelFirst);
        }
    }

    private Task RunDisposal(IAsyncEnumerator<T>? inner, bool cancelFirst)
    {
        return Task.Run(
            async () =>
            {
                RunContext.SetCurrent(_context);
                try
                {
                    if (cancelFirst)
                    {
                        await _innerStop!.CancelAsync().ConfigureAwait(false);
                    }
                }
                finally
                {
                    if (inner is not null)
                    {
                        await inner.DisposeAsync().ConfigureAwait(false);
                    }
                }
            },
            CancellationToken.None);
    }

    private void Finish()
    {
        _state = State.Finished;

        // Unregister, not Dispose: this may run inside one of these very callbacks.
        _streamTokenRegistration.Unregister();
        _enumeratorTokenRegistration.Unregister();
    }

    /// <summary>Settles the task attached to the run (success, cancellation or fault, as the inner stream ended) and lets go of the stop token; once.</summary>
    /// <param name="error">The run's outcome: <see langword="null"/> for success, a cancellation, or the inner stream's error.</param>
    /// <param name="answerHere">
    /// Whether this thread answers the consumer's wait itself if settling ends the run (the step that saw the inner
    /// stream end, on the thread that ended it or finished disposing it), instead of the end's own work item: the run
    /// ends inside the settling, with no provider code left to run on this thread.
    /// </param>
    private void SettleAndRelease(Exception? error, bool answerHere = false)
    {
        if (Interlocked.Exchange(ref _settledOnce, 1) != 0)
        {
            return;
        }

        _abortRegistration.Unregister();
        _streamTokenRegistration.Unregister();
        _enumeratorTokenRegistration.Unregister();

        // Settling the task ends the run at once on this thread (the registry's continuation is synchronous), unless it
        // has ended already.
        SupervisedStreamEnumerator<T>? outer = t_settling;
        t_settling = answerHere ? this : outer;
        try
        {
            if (error is null)
            {
                _settledBuilder.SetResult();
            }
            else
            {
                // An OperationCanceledException makes the task cancelled with it; anything else faults it.
                _settledBuilder.SetException(error);
            }
        }
        finally
        {
            t_settling = outer;
        }

        _innerStop!.Dispose();
        if (answerHere)
        {
            AnswerIfEnded();
        }
    }

    /// <summary>What the consumer's last <see cref="MoveNextAsync"/> returns or throws once the run has ended.</summary>
    private bool EndOfStream(RunHandle run)
    {
        if (RunEnds.ToCallerException(run, _settled, CallerToken()) is { } error)
        {
            throw error;
        }

        // The inner stream settled and its own outcome stands: its end, its exception, its cancellation.
        _settled.GetAwaiter().GetResult();
        return false;
    }
}
