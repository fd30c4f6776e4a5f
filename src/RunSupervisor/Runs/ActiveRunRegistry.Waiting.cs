namespace RunSupervisor;

public sealed partial class ActiveRunRegistry
{
    /// <summary>
    /// Waits for the run that is current on the session when this method is called to leave the registry.
    /// Completes from the run's end notification; nothing polls.
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> to wait without limit.</param>
    /// <param name="cancellationToken">Cancels the wait (not the run).</param>
    /// <returns><see langword="true"/> if the session had no run or the run ended in time; <see langword="false"/> on timeout.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative (other than infinite) or too large for a timer.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<bool> WaitForRunEndAsync(string sessionId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        SessionIds.Validate(sessionId);
        ValidateTimeout(timeout);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<bool>(cancellationToken);
        }

        return _runs.Find(sessionId) is { } run
            ? WaitAsync(run.Completion, timeout, cancellationToken)
            : TrueTask;
    }

    /// <summary>
    /// Waits for every run active when this method is called to end; when <paramref name="timeout"/> elapses
    /// first, deals with the remaining runs as <paramref name="options"/> says and reports what it did.
    /// Runs started after the call are not waited for.
    /// </summary>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> to wait without limit.</param>
    /// <param name="options">What to do with the runs that remain at the timeout; <see langword="null"/> to leave them alone.</param>
    /// <param name="cancellationToken">Cancels the drain; nothing is aborted or evicted then.</param>
    /// <returns>Which sessions drained, were aborted, were force-evicted or are still running.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative (other than infinite) or too large for a timer.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<DrainResult> DrainAsync(TimeSpan timeout, DrainOptions? options = null, CancellationToken cancellationToken = default)
    {
        ValidateTimeout(timeout);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<DrainResult>(cancellationToken);
        }

        List<RunHandle> runs = [];
        foreach (RunHandle run in _runs)
        {
            runs.Add(run);
        }

        return DrainCoreAsync(runs, timeout, options, cancellationToken);
    }

    private static void ValidateTimeout(TimeSpan timeout)
    {
        if (timeout != Timeout.InfiniteTimeSpan && (timeout < TimeSpan.Zero || timeout.TotalMilliseconds > uint.MaxValue - 1))
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be Timeout.InfiniteTimeSpan or between 00:00:00 and 49.17:02:47.294.");
        }
    }

    private async Task<bool> WaitAsync(Task completion, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await completion.WaitAsync(timeout, _clock.TimeProvider, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<DrainResult> DrainCoreAsync(List<RunHandle> runs, TimeSpan timeout, DrainOptions? options, CancellationToken cancellationToken)
    {
        if (runs.Count > 0)
        {
            await WaitAsync(Task.WhenAll(runs.Select(static r => r.Completion)), timeout, cancellationToken).ConfigureAwait(false);
        }

        List<string> drained = [];
        List<string> aborted = [];
        List<string> evicted = [];
        List<string> stillRunning = [];
        long now = NowTicks();
        foreach (RunHandle run in runs)
        {
            if (run.Status >= RunStatus.Ended)
            {
                drained.Add(run.SessionId);
            }
            else if (options?.ForceEvictOverdue == true && now >= run.DeadlineTicks && TryForceEvict(run))
            {
                evicted.Add(run.SessionId);
            }
            else if (options?.AbortRemaining == true && run.Abort("the drain timed out"))
            {
                // With a zero grace period the abort itself evicts the run.
                (run.Status == RunStatus.Evicted ? evicted : aborted).Add(run.SessionId);
            }
            else if (run.Status >= RunStatus.Ended)
            {
                drained.Add(run.SessionId);
            }
            else
            {
                stillRunning.Add(run.SessionId);
            }
        }

        var result = new DrainResult(drained, aborted, evicted, stillRunning);
        if (result.IsComplete)
        {
            _logger.DrainCompleted(drained.Count);
        }
        else
        {
            _logger.DrainTimedOut(timeout, aborted.Count, evicted.Count, stillRunning.Count);
        }

        return result;
    }
}
