namespace RunSupervisor;

/// <summary>How a start is validated, entered and published: the one path behind Start, TryStart, StartAsync and RunAsync.</summary>
public sealed partial class ActiveRunRegistry
{
    /// <summary>Validates, enters the run, publishes; returns <see langword="null"/> with the busy session's run when refused.</summary>
    private RunHandle? StartCore(string sessionId, RunStartOptions? options, IRunEndObserver? observer, out RunEntry? busy)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        TimeSpan timeout = _runTimeout;
        TimeSpan grace = _gracePeriod;
        bool supersede = false;
        if (options is not null)
        {
            (timeout, grace, supersede) = ResolveStartOptions(options);
        }

        // A busy session is refused without allocating; the answer is confirmed under the lock.
        int sessionHash = SessionTable.Hash(sessionId);
        if (!supersede && _table.Find(sessionId, sessionHash) is { } current)
        {
            busy = current;
            return null;
        }

        // Built before the lock so the lock is held only for the transition; the run id is assigned under it.
        long now = NowTicks();
        var entry = new RunEntry(this, sessionId, sessionHash, now, _clock.ToWallClock(now).UtcTicks, timeout.Ticks, grace.Ticks)
        {
            // Decided before the run is published, so whichever thread ends it knows without a fence whether to look for an activity.
            Traced = RunSupervisorActivitySource.Source.HasListeners(),
            EndObserver = observer,
        };
        EnterResult result;
        using (_table.EnterGate())
        {
            ThrowIfDisposed();
            result = _table.EnterLocked(entry, supersede, now);
        }

        if (!result.Entered)
        {
            busy = result.Current;
            return null;
        }

        busy = null;
        PublishStart(entry, result.Superseded);
        return new RunHandle(entry);
    }

    private (TimeSpan Timeout, TimeSpan Grace, bool Supersede) ResolveStartOptions(RunStartOptions options)
    {
        TimeSpan timeout = options.Timeout ?? _runTimeout;
        TimeSpan grace = options.GracePeriod ?? _gracePeriod;
        if (timeout <= TimeSpan.Zero || timeout > _maxRunDuration || timeout > RunSupervisorOptions.RunTimeoutLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), timeout, $"RunStartOptions.Timeout must be greater than 00:00:00 and at most MaxRunDuration ({_maxRunDuration}) and {RunSupervisorOptions.RunTimeoutLimit}.");
        }

        if (grace < TimeSpan.Zero || grace > RunSupervisorOptions.GracePeriodLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), grace, $"RunStartOptions.GracePeriod must be between 00:00:00 and {RunSupervisorOptions.GracePeriodLimit}.");
        }

        if (!Enum.IsDefined(options.WhenBusy))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.WhenBusy, "RunStartOptions.WhenBusy must be Reject or Supersede.");
        }

        return (timeout, grace, options.WhenBusy == SessionBusyBehavior.Supersede);
    }
}
