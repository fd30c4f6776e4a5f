using System.Runtime.ExceptionServices;
using Microsoft.Extensions.AI;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// One supervised enumeration of a chat stream: one run, from the first <see cref="MoveNextAsync"/> until the inner
/// stream has settled.
/// </summary>
/// <remarks>
/// <para>Every inner <c>MoveNextAsync</c> is raced against the run's <see cref="RunHandle.Completion"/>, so the
/// consumer waits no longer than the watchdog: a stream that stalls and ignores cancellation makes this
/// <see cref="MoveNextAsync"/> throw <see cref="RunEvictedException"/> at deadline + grace.</para>
/// <para>The run is tied to <see cref="_settled"/> (through <see cref="RunHandle.Attach(Task)"/>), which settles
/// once the inner stream has finished and been disposed. So the run ends with the matching reason (Completed,
/// Faulted, TimedOut, Aborted), and an evicted run stays in the abandoned ledger exactly as long as its inner stream
/// is still pending.</para>
/// <para>Like any enumerator it is not thread-safe: one <see cref="MoveNextAsync"/> or <see cref="DisposeAsync"/> at
/// a time.</para>
/// </remarks>
internal sealed class SupervisedChatStreamEnumerator : IAsyncEnumerator<ChatResponseUpdate>
{
    private readonly SupervisedChatStream _stream;
    private readonly CancellationToken _enumeratorToken;

    // Without RunContinuationsAsynchronously on purpose: settling it ends the run inline (the registry's continuation
    // is synchronous), so the run's end reason is known as soon as Settle returns.
    private readonly TaskCompletionSource _settled = new();
    private RunHandle? _run;
    private IAsyncEnumerator<ChatResponseUpdate>? _inner;
    private CancellationTokenRegistration _streamTokenRegistration;
    private CancellationTokenRegistration _enumeratorTokenRegistration;
    private ChatResponseUpdate? _current;
    private State _state;

    public SupervisedChatStreamEnumerator(SupervisedChatStream stream, CancellationToken enumeratorToken)
    {
        _stream = stream;
        _enumeratorToken = enumeratorToken;
    }

    private enum State
    {
        NotStarted,
        Streaming,
        Finished,
    }

    public ChatResponseUpdate Current => _current ?? throw new InvalidOperationException("MoveNextAsync has not returned true.");

    public async ValueTask<bool> MoveNextAsync()
    {
        if (_state == State.Finished)
        {
            return false;
        }

        if (_state == State.NotStarted)
        {
            Start();
        }

        RunHandle run = _run!;
        if (run.Completion.IsCompleted)
        {
            // The run left the registry while the consumer was between two updates (evicted, superseded, the registry
            // disposed): nothing more is delivered from it.
            Finish();
            _ = SettleAbandonedAsync(Task.FromResult(false));
            throw EndedException(run);
        }

        // On the thread pool: an inner stream that blocks its thread must not block the consumer, whose wait is
        // bounded by the watchdog through the race below.
        Task<bool> move = Task.Run(MoveInnerAsync, CancellationToken.None);
        if (!move.IsCompleted)
        {
            await Task.WhenAny(move, run.Completion).ConfigureAwait(false);
        }

        if (!move.IsCompleted || (move.Status == TaskStatus.RanToCompletion && move.Result && run.Completion.IsCompleted))
        {
            // The run left the registry first (evicted at deadline + grace, superseded, the registry disposed), or at
            // the same moment as the update arrived: its late output is suppressed, the inner stream is settled in the
            // background, and the run stays in the abandoned ledger until it has.
            Finish();
            _ = SettleAbandonedAsync(move);
            throw EndedException(run);
        }

        if (move.Status == TaskStatus.RanToCompletion)
        {
            if (move.Result)
            {
                _current = _inner!.Current;
                return true;
            }

            Finish();
            Exception? disposeError = await SettleAsync(error: null).ConfigureAwait(false);
            if (disposeError is not null)
            {
                ExceptionDispatchInfo.Throw(disposeError);
            }

            return false;
        }

        Exception error = ThrownBy(move);
        Finish();
        await SettleAsync(error).ConfigureAwait(false);
        Exception outcome = Translate(run, error);
        if (ReferenceEquals(outcome, error))
        {
            ExceptionDispatchInfo.Throw(error);
        }

        throw outcome;
    }

    public async ValueTask DisposeAsync()
    {
        if (_state != State.Streaming)
        {
            _state = State.Finished;
            return;
        }

        // The consumer stopped early, between two updates: dispose the inner stream, then release the run.
        Finish();
        Exception? disposeError = await SettleAsync(error: null).ConfigureAwait(false);
        if (disposeError is not null)
        {
            ExceptionDispatchInfo.Throw(disposeError);
        }
    }

    /// <summary>The exception a failed task rethrows when awaited: for a cancelled one, the inner stream's own <see cref="OperationCanceledException"/>.</summary>
    private static Exception ThrownBy(Task task)
    {
        try
        {
            task.GetAwaiter().GetResult();
        }
#pragma warning disable CA1031 // Captured to be translated and rethrown by the caller, never swallowed.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex;
        }

        throw new InvalidOperationException("The task did not fail.");
    }

    private static CancellationTokenRegistration AbortOnCancel(RunHandle run, CancellationToken token) =>
        token.UnsafeRegister(static state => ((RunHandle)state!).Abort("the caller's cancellation token was cancelled"), run);

    /// <summary>The consumer's outcome when the inner stream failed: as <c>ActiveRunRegistry.RunAsync</c> maps it.</summary>
    private Exception Translate(RunHandle run, Exception error)
    {
        if (!run.Completion.IsCompletedSuccessfully)
        {
            return error;
        }

        return run.Completion.Result switch
        {
            RunEndReason.ForceEvicted or RunEndReason.Superseded => EndedException(run),
            RunEndReason.TimedOut when error is OperationCanceledException => new RunTimedOutException(run.SessionId, run.RunId, run.Deadline - run.StartedAt, error),
            _ => error,
        };
    }

    /// <summary>The consumer's outcome when the run left the registry before its inner stream settled.</summary>
    private Exception EndedException(RunHandle run)
    {
        RunEndReason reason = run.Completion.Result;
        return reason switch
        {
            RunEndReason.ForceEvicted => new RunEvictedException(run.SessionId, run.RunId, EvictedAge(run)),
            RunEndReason.Superseded => new OperationCanceledException($"Run {run.RunId} for session '{run.SessionId}' was superseded by a newer run.", run.AbortToken),
            _ => new OperationCanceledException($"Run {run.RunId} for session '{run.SessionId}' ended ({reason}) before its stream settled.", run.AbortToken),
        };
    }

    /// <summary>How long the run was in the registry when it was evicted.</summary>
    private TimeSpan EvictedAge(RunHandle run)
    {
        // The handle does not expose when it ended, but the ledger holds the eviction instant: the inner stream is
        // still pending here, so the run is in it (unless a full ledger has already forgotten it).
        try
        {
            foreach (AbandonedRunInfo abandoned in _stream.Registry.GetAbandonedRuns())
            {
                if (abandoned.RunId == run.RunId)
                {
                    return abandoned.EvictedAt - abandoned.StartedAt;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // The registry was disposed meanwhile; fall back below.
        }

        return run.Deadline - run.StartedAt;
    }

    private void Start()
    {
        // Finished until the run has started: a failed start leaves nothing to clean up.
        _state = State.Finished;
        _stream.CancellationToken.ThrowIfCancellationRequested();
        _enumeratorToken.ThrowIfCancellationRequested();
        RunHandle run = _stream.Registry.Start(_stream.SessionId, _stream.RunStartOptions);
        _run = run;
        run.Attach(_settled.Task);
        _streamTokenRegistration = AbortOnCancel(run, _stream.CancellationToken);
        _enumeratorTokenRegistration = AbortOnCancel(run, _enumeratorToken);
        _state = State.Streaming;
    }

    private Task<bool> MoveInnerAsync()
    {
        // Created lazily, on the thread pool, like every inner call: a client that does work before returning its
        // stream must not block the consumer either. The inner call gets the run's abort token.
        _inner ??= _stream.InnerClient
            .GetStreamingResponseAsync(_stream.Messages, _stream.Options, _run!.AbortToken)
            .GetAsyncEnumerator(_run.AbortToken);
        return _inner.MoveNextAsync().AsTask();
    }

    private void Finish()
    {
        _state = State.Finished;
        _streamTokenRegistration.Dispose();
        _enumeratorTokenRegistration.Dispose();
    }

    /// <summary>
    /// Disposes the inner stream while the run is still registered (its disposal is part of the stream), then
    /// settles the run with <paramref name="error"/>, or with the disposal's own error. Waits no longer than the run:
    /// if it is evicted while the disposal hangs, the disposal goes on in the background and the run stays in the
    /// abandoned ledger until it finishes.
    /// </summary>
    /// <returns>The disposal's exception, if it threw.</returns>
    private async Task<Exception?> SettleAsync(Exception? error)
    {
        Task dispose = DisposeInnerAsync();
        if (!dispose.IsCompleted)
        {
            await Task.WhenAny(dispose, _run!.Completion).ConfigureAwait(false);
            if (!dispose.IsCompleted)
            {
                _ = SettleAbandonedAsync(Task.FromResult(false), dispose, error);
                return null;
            }
        }

        Exception? disposeError = dispose.Exception?.InnerException;
        Settle(error ?? disposeError);
        return disposeError;
    }

    /// <summary>Waits for an abandoned inner stream to settle, disposes it, and settles the run. Never throws.</summary>
    private Task SettleAbandonedAsync(Task<bool> pendingMove) => SettleAbandonedAsync(pendingMove, dispose: null, error: null);

    private async Task SettleAbandonedAsync(Task<bool> pendingMove, Task? dispose, Exception? error)
    {
#pragma warning disable CA1031 // Background clean-up of an abandoned stream: every failure is handed to the run (and so logged and observed by the registry), never rethrown.
        try
        {
            // A late update is dropped: the consumer has already been told the run ended.
            await pendingMove.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error ??= ex;
        }

        try
        {
            await (dispose ?? DisposeInnerAsync()).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error ??= ex;
        }
#pragma warning restore CA1031

        Settle(error);
    }

    private Task DisposeInnerAsync()
    {
        IAsyncEnumerator<ChatResponseUpdate>? inner = _inner;
        return inner is null
            ? Task.CompletedTask
            : Task.Run(() => inner.DisposeAsync().AsTask(), CancellationToken.None);
    }

    /// <summary>Settles the task attached to the run: success, cancellation or fault, as the inner stream ended.</summary>
    private void Settle(Exception? error)
    {
        _ = error switch
        {
            null => _settled.TrySetResult(),
            OperationCanceledException canceled => _settled.TrySetCanceled(canceled.CancellationToken),
            _ => _settled.TrySetException(error),
        };
    }
}
