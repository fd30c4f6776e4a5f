namespace RunSupervisor;

/// <summary>Waiting for runs to end, and draining the registry.</summary>
public sealed partial class ActiveRunRegistry
{
    private const string DrainAbortText = "the drain timed out";
    private const string DrainEvictText = "the drain force-evicted it past its deadline";
    private static readonly Task<bool> TrueTask = Task.FromResult(true);

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

        return _table.Find(sessionId) is { } entry
            ? WaitAsync(entry.Completion, timeout, cancellationToken)
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
    /// <returns>What became of each run: drained, aborted by the drain, force-evicted (by the watchdog while the drain waited, or by the drain), or still running.</returns>
    /// <remarks>The drain's own aborts and evictions run abort-token callbacks on the thread pool: a drain never waits for provider code.</remarks>
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

        List<RunEntry> runs = [];
        string[] cancelled;
        if (options?.CancelWaiting == true)
        {
            cancelled = CancelAllWaitingThenList(runs);
        }
        else
        {
            cancelled = [];
            ListRuns(runs);
        }

        runs.Sort(static (a, b) => a.RunId.CompareTo(b.RunId));
        return DrainCoreAsync(runs, cancelled, timeout, options, cancellationToken);
    }

    private void ListRuns(List<RunEntry> runs)
    {
        foreach (RunEntry entry in _table)
        {
            runs.Add(entry);
        }
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

    /// <summary>
    /// Fails every waiting start for a drain and lists the active runs in the same step under the gate, so a run that
    /// ends meanwhile cannot admit a waiting start the drain neither cancels nor waits for; returns the cancelled
    /// starts' sessions, oldest first.
    /// </summary>
    private string[] CancelAllWaitingThenList(List<RunEntry> runs)
    {
        // Leased starts waiting for another host's release, or behind an older start of this host for their session: failed
        // before the runs are listed, so one that enters here after the listing finds itself failed and withdraws.
        List<string> remote = _remoteWaitList?.FailAll(static w => new OperationCanceledException($"The registry is draining: the start for session '{w.SessionId}' was cancelled while it waited for its session.")) ?? [];
        List<PendingStart> cancelled;
        SettledStarts settled;
        long now = NowTicks();
        using (_table.EnterGate())
        {
            cancelled = _table.CancelAllWaitingLocked(static start => new OperationCanceledException($"The registry is draining: the start for session '{start.SessionId}' was cancelled while it waited for admission."), now);
            settled = _table.TakeSettledLocked();
            ListRuns(runs);
        }

        PublishSettled(settled);
        if (cancelled.Count + remote.Count > 0)
        {
            _logger.DrainCancelledWaiting(cancelled.Count + remote.Count);
        }

        return [.. cancelled.Select(static s => s.SessionId), .. remote];
    }

    private async Task<DrainResult> DrainCoreAsync(List<RunEntry> runs, string[] cancelledStarts, TimeSpan timeout, DrainOptions? options, CancellationToken cancellationToken)
    {
        bool endedInTime = runs.Count == 0
            || await WaitAsync(Task.WhenAll(runs.Select(static r => r.Completion)), timeout, cancellationToken).ConfigureAwait(false);

        var drained = new List<DrainedRun>(runs.Count);
        List<string>? withdrawnByDrain = null;
        long now = NowTicks();
        for (int i = 0; i < runs.Count; i++)
        {
            RunEntry entry = runs[i];
            if (entry.HasEnded && !entry.StartPublished)
            {
                // A leased start withdrawn before its lease was held never ran: not a run of the drain's. One withdrawn
                // because this drain cancelled the waiting starts as it entered is one of the starts the drain cancelled.
                if (entry.WithdrawnByDrain)
                {
                    (withdrawnByDrain ??= []).Add(entry.SessionId);
                }

                continue;
            }

            DrainOutcome outcome;
            if (entry.HasEnded)
            {
                outcome = EndedOutcome(entry);
            }
            else if (options?.ForceEvictOverdue == true && now >= entry.DeadlineTicks && ForceEvict(entry, DrainEvictText))
            {
                outcome = DrainOutcome.Evicted;
            }
            else if (options?.AbortRemaining == true && Abort(entry, DrainAbortText, cancelOnThisThread: false))
            {
                // With a zero grace period the abort itself evicts the run.
                outcome = entry.Status == RunStatus.Evicted ? DrainOutcome.Evicted : DrainOutcome.Aborted;
            }
            else
            {
                outcome = entry.HasEnded ? EndedOutcome(entry) : DrainOutcome.StillRunning;
            }

            drained.Add(entry.HasEnded
                ? new DrainedRun(entry.SessionId, entry.RunId, entry.EndReason, entry.Detail, outcome)
                : new DrainedRun(entry.SessionId, entry.RunId, Reason: null, Detail: null, outcome));
        }

        var result = new DrainResult(drained, withdrawnByDrain is null ? cancelledStarts : [.. cancelledStarts, .. withdrawnByDrain]);

        // Whether the timeout elapsed with runs left, not whether every run drained: a run the watchdog force-evicted
        // while the drain waited ended within the timeout (the result still says it did not drain).
        if (endedInTime)
        {
            _logger.DrainCompleted(drained.Count);
        }
        else
        {
            _logger.DrainTimedOut(timeout, result.Aborted.Count, result.Evicted.Count, result.StillRunning.Count);
        }

        return result;
    }

    /// <summary>A run that left by itself drained; one force-evicted (by the watchdog too) did not.</summary>
    private static DrainOutcome EndedOutcome(RunEntry entry)
        => entry.EndReason == RunEndReason.ForceEvicted ? DrainOutcome.Evicted : DrainOutcome.Drained;
}
