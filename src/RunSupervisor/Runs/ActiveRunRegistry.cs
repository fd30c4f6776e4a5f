using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace RunSupervisor;

/// <summary>
/// The single source of truth for which run owns each session. Issues <see cref="RunHandle"/>s (one active run
/// per session), aborts each run at its deadline and force-evicts it after its grace period if its provider
/// never settles, and reports every run's end exactly once.
/// </summary>
/// <remarks>
/// <para>All members are thread-safe. Queries (<see cref="IsActive(string)"/>, <see cref="TryGetRun(string, out RunInfo?)"/>,
/// <see cref="ActiveCount"/>) take no lock. State changes happen under one lock and are complete before any
/// callback (<see cref="RunEnded"/>, abort-token callbacks, continuations of <see cref="RunHandle.Completion"/>)
/// runs; callbacks never run under the lock, and an exception from one is logged and does not affect the registry.</para>
/// <para>All time comes from the injected <see cref="TimeProvider"/>.</para>
/// </remarks>
public sealed partial class ActiveRunRegistry : IDisposable, IAsyncDisposable
{
    /// <summary>The longest accepted session id, in UTF-16 code units.</summary>
    public const int MaxSessionIdLength = SessionIds.MaxLength;

    private static readonly Task<bool> TrueTask = Task.FromResult(true);

    // Guards every state transition. Nothing under it calls the TimeProvider, an ITimer, a logger, a metric
    // listener or any other foreign code: a TimeProvider may run due timer callbacks inside any of its methods
    // (FakeTimeProvider does), on this thread, and callbacks must never see a half-made transition.
    private readonly Lock _gate = new();
    private readonly SessionTable _runs = new();
    private readonly DeadlineQueue _queue = new();
    private readonly AbandonedRunLedger _ledger;
    private readonly WatchdogTimer _watchdog;
    private readonly RegistryClock _clock;
    private readonly ILogger _logger;
    private readonly TimeSpan _runTimeout;
    private readonly TimeSpan _gracePeriod;
    private readonly TimeSpan _maxRunDuration;
    private readonly int _maxAbandonedRuns;
    private long _lastRunId;
    private int _activeCount;
    private int _abandonedCount;
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="ActiveRunRegistry"/> class; the constructor dependency injection uses.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="timeProvider">The source of all time: deadlines, grace periods and waits.</param>
    /// <param name="logger">The logger for run transitions.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names the option and its allowed range.</exception>
    public ActiveRunRegistry(IOptions<RunSupervisorOptions> options, TimeProvider timeProvider, ILogger<ActiveRunRegistry> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);

        RunSupervisorOptions value = options.Value ?? throw new ArgumentException("IOptions<RunSupervisorOptions>.Value is null.", nameof(options));
        RunSupervisorOptionsValidator.ThrowIfInvalid(value);

        // Copied: later changes to the options object do not reach a running registry.
        _runTimeout = value.RunTimeout;
        _gracePeriod = value.GracePeriod;
        _maxRunDuration = value.MaxRunDuration;
        _maxAbandonedRuns = value.MaxAbandonedRuns;
        _clock = new RegistryClock(timeProvider);
        _logger = logger;
        _ledger = new AbandonedRunLedger(_maxAbandonedRuns);
        Metrics = new RunSupervisorMetrics();
        _watchdog = new WatchdogTimer(_clock, static state => ((ActiveRunRegistry)state!).OnWatchdogTick(), this);
    }

    /// <summary>Initializes a new instance of the <see cref="ActiveRunRegistry"/> class without dependency injection.</summary>
    /// <param name="options">The options; <see langword="null"/> for the defaults. Validated here.</param>
    /// <param name="timeProvider">The source of all time; <see langword="null"/> for <see cref="TimeProvider.System"/>.</param>
    /// <param name="loggerFactory">The logger factory; <see langword="null"/> for no logging.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names the option and its allowed range.</exception>
    public ActiveRunRegistry(RunSupervisorOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
        : this(
            Microsoft.Extensions.Options.Options.Create(options ?? new RunSupervisorOptions()),
            timeProvider ?? TimeProvider.System,
            loggerFactory?.CreateLogger<ActiveRunRegistry>() ?? NullLogger<ActiveRunRegistry>.Instance)
    {
    }

    /// <summary>
    /// Occurs once per run, after the run's registry entry is gone (so <see cref="IsActive(string)"/> already
    /// reflects it) and before <see cref="RunHandle.Completion"/> completes. Raised outside the registry's lock;
    /// an exception from a handler is logged and the other handlers still run.
    /// </summary>
    public event EventHandler<RunEndedEventArgs>? RunEnded;

    /// <summary>Gets the number of active runs (one per busy session).</summary>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public int ActiveCount
    {
        get
        {
            ThrowIfDisposed();
            return Volatile.Read(ref _activeCount);
        }
    }

    /// <summary>Gets the number of runs in the abandoned ledger: out of the registry, provider not yet settled.</summary>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public int AbandonedCount
    {
        get
        {
            ThrowIfDisposed();
            return Volatile.Read(ref _abandonedCount);
        }
    }

    /// <summary>
    /// Gets the abandoned ledger's cap, <see cref="RunSupervisorOptions.MaxAbandonedRuns"/> as the registry was created
    /// with: when <see cref="AbandonedCount"/> reaches it, each new abandoned run makes the ledger forget its oldest one.
    /// </summary>
    /// <remarks>Fixed for the registry's lifetime; readable after disposal. Health checks compare <see cref="AbandonedCount"/> with it.</remarks>
    public int MaxAbandonedRuns => _maxAbandonedRuns;

    internal RunSupervisorMetrics Metrics { get; }

    internal TimeProvider TimeProvider => _clock.TimeProvider;

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Starts a run on an idle session.</summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <returns>The run's handle. Dispose it when the run is over.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.Supersede"/> is not set.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public RunHandle Start(string sessionId, RunStartOptions? options = null)
    {
        StartCore(sessionId, options, throwIfBusy: true, out RunHandle? handle);
        return handle!;
    }

    /// <summary>Starts a run if the session is idle (or <see cref="RunStartOptions.Supersede"/> is set).</summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="handle">The run's handle when the method returns <see langword="true"/>.</param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <returns><see langword="true"/> if the run started; <see langword="false"/> if the session is busy.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public bool TryStart(string sessionId, [NotNullWhen(true)] out RunHandle? handle, RunStartOptions? options = null)
        => StartCore(sessionId, options, throwIfBusy: false, out handle);

    /// <summary>Gets a value indicating whether the session has an active run. Takes no lock and does not allocate.</summary>
    /// <param name="sessionId">The session.</param>
    /// <returns><see langword="true"/> if a run owns the session.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public bool IsActive(string sessionId)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        return _runs.Find(sessionId) is not null;
    }

    /// <summary>Gets a snapshot of the session's active run, if any.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="run">The snapshot when the method returns <see langword="true"/>.</param>
    /// <returns><see langword="true"/> if a run owns the session.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public bool TryGetRun(string sessionId, [NotNullWhen(true)] out RunInfo? run)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (_runs.Find(sessionId) is { } handle)
        {
            run = ToInfo(handle);
            return true;
        }

        run = null;
        return false;
    }

    /// <summary>Gets a snapshot of every active run, ordered by run id.</summary>
    /// <returns>The active runs.</returns>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public IReadOnlyList<RunInfo> GetActiveRuns()
    {
        ThrowIfDisposed();
        List<RunInfo> runs = new(Volatile.Read(ref _activeCount));
        foreach (RunHandle run in _runs)
        {
            runs.Add(ToInfo(run));
        }

        runs.Sort(static (a, b) => a.RunId.CompareTo(b.RunId));
        return runs;
    }

    /// <summary>Gets a snapshot of the abandoned ledger, oldest eviction first.</summary>
    /// <returns>The runs that left the registry while their provider was still pending.</returns>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public IReadOnlyList<AbandonedRunInfo> GetAbandonedRuns()
    {
        ThrowIfDisposed();
        lock (_gate)
        {
            return _ledger.ToArray();
        }
    }

    /// <summary>
    /// Aborts the session's active run: cancels its abort token and starts its grace period.
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="expectedRunId">
    /// The run the caller means. When given and the session's current run has another id (the run the caller
    /// saw has already been replaced), nothing happens.
    /// </param>
    /// <param name="reason">Why, for the log.</param>
    /// <returns><see langword="true"/> if a run was aborted by this call.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public bool TryAbort(string sessionId, long? expectedRunId = null, string? reason = null)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        if (_runs.Find(sessionId) is not { } run || (expectedRunId is long expected && run.RunId != expected))
        {
            return false;
        }

        return AbortRun(run, reason ?? "ActiveRunRegistry.TryAbort was called");
    }

    /// <summary>Aborts every run, stops the watchdog, and ends every run (reason <see cref="RunEndReason.Aborted"/>) once.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _watchdog.Dispose();
        List<RunHandle> ended = [];
        long now = NowTicks();
        lock (_gate)
        {
            foreach (RunHandle run in _runs)
            {
                if (TryEndLocked(run, RunEndReason.Aborted, now))
                {
                    ended.Add(run);
                }
            }
        }

        foreach (RunHandle run in ended)
        {
            Publish(run, cancel: true);
        }

        Metrics.Dispose();
    }

    /// <summary>Disposes the registry; see <see cref="Dispose"/>.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    /// <summary>Like <see cref="IsActive(string)"/> without validation or the disposed check, for internal observers.</summary>
    internal bool IsBusy(string sessionId) => _runs.Find(sessionId) is not null;

    /// <summary>Whether the run with <paramref name="runId"/> is the session's entry; for tests and internal checks.</summary>
    internal bool IsRegistered(string sessionId, long runId) => _runs.Find(sessionId)?.RunId == runId;

    internal bool IsCurrent(RunHandle run) => ReferenceEquals(_runs.Find(run.SessionId, run.SessionHash), run);

    internal void Attach(RunHandle run, Task providerTask)
    {
        lock (_gate)
        {
            if (run.ProviderTask is not null)
            {
                throw new InvalidOperationException($"A provider task is already attached to run {run.RunId}.");
            }

            run.ProviderTask = providerTask;
        }
    }

    internal void OnProviderSettled(RunHandle run, Task providerTask)
    {
        // Observed first, whatever happens next: an abandoned provider's fault never becomes an unobserved task exception.
        AggregateException? fault = providerTask.Exception;
        bool ended;
        AbandonedRunInfo? abandoned = null;
        long now = NowTicks();
        lock (_gate)
        {
            RunEndReason reason = run.Status == RunStatus.Running
                ? providerTask.Status switch
                {
                    TaskStatus.RanToCompletion => RunEndReason.Completed,
                    TaskStatus.Canceled => RunEndReason.Aborted,
                    _ => RunEndReason.Faulted,
                }
                : AbortedReason(run);
            ended = TryEndLocked(run, reason, now);
            if (!ended)
            {
                TryRemoveAbandonedLocked(run.RunId, out abandoned);
            }
        }

        if (ended)
        {
            Publish(run, cancel: false);
        }
        else if (abandoned is not null)
        {
            LogAbandonedRunSettled(abandoned, providerTask.Status.ToString(), fault);
        }
    }

    internal void Release(RunHandle run)
    {
        bool ended;
        bool firstRelease;
        AbandonedRunInfo? abandoned = null;
        long now = NowTicks();
        lock (_gate)
        {
            firstRelease = !run.Released;
            run.Released = true;
            ended = TryEndLocked(run, run.Status == RunStatus.Running ? RunEndReason.Completed : AbortedReason(run), now);

            // Without an attached task, the owner's release is the only sign that an abandoned run has settled.
            if (!ended && firstRelease && run.ProviderTask is null)
            {
                TryRemoveAbandonedLocked(run.RunId, out abandoned);
            }
        }

        if (ended)
        {
            Publish(run, cancel: false);
            return;
        }

        _logger.StaleReleaseIgnored(run.SessionId, run.RunId, run.Status);
        if (abandoned is not null)
        {
            LogAbandonedRunSettled(abandoned, "released", fault: null);
        }
    }

    internal bool AbortRun(RunHandle run, string reason)
    {
        long now = NowTicks();
        lock (_gate)
        {
            if (run.Status != RunStatus.Running || !IsCurrent(run))
            {
                return false;
            }

            BeginAbortLocked(run, now, timedOut: false);
        }

        _logger.RunAborted(run.SessionId, run.RunId, reason);
        CancelAbortToken(run);

        // A zero grace period evicts at once; otherwise the watchdog wakes at the eviction instant.
        if (run.EvictAtTicks <= now)
        {
            TryForceEvict(run);
        }
        else
        {
            _watchdog.ScheduleNoLaterThan(run.EvictAtTicks);
        }

        return true;
    }

    internal bool TryExtendDeadline(RunHandle run, TimeSpan extension)
    {
        lock (_gate)
        {
            if (run.Status != RunStatus.Running || !IsCurrent(run))
            {
                return false;
            }

            long deadline = run.DeadlineTicks;
            if (extension.Ticks > run.MaxDeadlineTicks - deadline)
            {
                return false;
            }

            // Only ever later: the pending wake-up may now be early, and an early tick just re-arms.
            run.DeadlineTicks = deadline + extension.Ticks;
            run.EvictAtTicks = run.DeadlineTicks + run.GracePeriod.Ticks;
            _queue.Update(run, run.DeadlineTicks);
            return true;
        }
    }

    /// <summary>Force-evicts <paramref name="run"/> if it is still current; used by drains and zero grace periods.</summary>
    internal bool TryForceEvict(RunHandle run)
    {
        bool ended;
        AbandonedRunInfo? forgotten;
        long now = NowTicks();
        lock (_gate)
        {
            ended = TryEndLocked(run, RunEndReason.ForceEvicted, now, out forgotten);
        }

        if (ended)
        {
            Publish(run, cancel: true, forgotten);
        }

        return ended;
    }

    private void LogAbandonedRunSettled(AbandonedRunInfo abandoned, string outcome, Exception? fault)
    {
        Metrics.AbandonedRuns.Add(-1);
        TimeSpan lateness = _clock.TimeProvider.GetUtcNow() - abandoned.EvictedAt;
        _logger.AbandonedRunSettled(abandoned.SessionId, abandoned.RunId, outcome, lateness, fault);
    }

    private static RunEndReason AbortedReason(RunHandle run) => run.TimedOut ? RunEndReason.TimedOut : RunEndReason.Aborted;

    private static RunInfo ToInfo(RunHandle run) => new(run.SessionId, run.RunId, run.StartedAt, run.Deadline, run.Status);

    private bool StartCore(string sessionId, RunStartOptions? options, bool throwIfBusy, [NotNullWhen(true)] out RunHandle? handle)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        TimeSpan timeout = _runTimeout;
        TimeSpan grace = _gracePeriod;
        bool supersede = false;
        if (options is not null)
        {
            timeout = options.Timeout ?? timeout;
            grace = options.GracePeriod ?? grace;
            supersede = options.Supersede;
            if (timeout <= TimeSpan.Zero || timeout > _maxRunDuration || timeout > RunSupervisorOptions.RunTimeoutLimit)
            {
                throw new ArgumentOutOfRangeException(nameof(options), timeout, $"RunStartOptions.Timeout must be greater than 00:00:00 and at most MaxRunDuration ({_maxRunDuration}) and {RunSupervisorOptions.RunTimeoutLimit}.");
            }

            if (grace < TimeSpan.Zero || grace > RunSupervisorOptions.GracePeriodLimit)
            {
                throw new ArgumentOutOfRangeException(nameof(options), grace, $"RunStartOptions.GracePeriod must be between 00:00:00 and {RunSupervisorOptions.GracePeriodLimit}.");
            }
        }

        // A busy session is refused without allocating; the answer is confirmed under the lock.
        int sessionHash = SessionTable.Hash(sessionId);
        if (!supersede && _runs.Find(sessionId, sessionHash) is { } busy)
        {
            return Refuse(sessionId, busy, throwIfBusy, out handle);
        }

        // Built before the lock so the lock is held only for the transition; the run id is assigned under it.
        RunHandle? superseded = null;
        AbandonedRunInfo? forgotten = null;
        long now = NowTicks();
        var run = new RunHandle(this, sessionId, sessionHash, _clock.ToWallClock(now), now, timeout, grace, _maxRunDuration)
        {
            // Decided before the run is published, so whichever thread ends it knows without a fence whether to look for an activity.
            Traced = RunSupervisorActivitySource.Source.HasListeners(),
        };
        lock (_gate)
        {
            ThrowIfDisposed();

            // Ids increase in the order runs enter the registry, so a session's newer run always has the larger id.
            // Assigned before the entry is published (lock-free readers may see it at once) and handed back on refusal.
            run.RunId = ++_lastRunId;
            if (!_runs.TryAdd(run, out RunHandle? current))
            {
                if (!supersede)
                {
                    _lastRunId--;
                    return Refuse(sessionId, current, throwIfBusy, out handle);
                }

                TryEndLocked(current, RunEndReason.Superseded, now, out forgotten, replacement: run);
                superseded = current;
            }

            _activeCount++;
            _queue.Add(run, run.DeadlineTicks);
        }

        StartActivity(run);
        Metrics.RunsStarted.Add(1);
        Metrics.ActiveRuns.Add(1);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            _logger.RunStarted(sessionId, run.RunId, run.Deadline);
        }
        if (superseded is not null)
        {
            _logger.RunSuperseded(sessionId, superseded.RunId, run.RunId);
            Publish(superseded, cancel: true, forgotten);
        }

        _watchdog.ScheduleNoLaterThan(run.DeadlineTicks);
        handle = run;
        return true;
    }

    private static bool Refuse(string sessionId, RunHandle current, bool throwIfBusy, out RunHandle? handle)
    {
        if (throwIfBusy)
        {
            throw new SessionBusyException(sessionId, current.RunId);
        }

        handle = null;
        return false;
    }

    private void BeginAbortLocked(RunHandle run, long now, bool timedOut)
    {
        run.SetAborting();
        run.TimedOut = timedOut;
        if (!timedOut)
        {
            // An explicit abort gives the run one grace period from now, but never pushes eviction back.
            run.EvictAtTicks = Math.Min(run.EvictAtTicks, now + run.GracePeriod.Ticks);
        }

        _queue.Update(run, run.EvictAtTicks);
    }

    private bool TryEndLocked(RunHandle run, RunEndReason reason, long now) => TryEndLocked(run, reason, now, out _);

    /// <summary>
    /// The one place a run leaves the registry. Succeeds once per run: the entry is removed only if it is still
    /// this very handle (or replaced by <paramref name="replacement"/>), so a stale caller can never touch a newer run.
    /// </summary>
    private bool TryEndLocked(RunHandle run, RunEndReason reason, long now, out AbandonedRunInfo? forgotten, RunHandle? replacement = null)
    {
        forgotten = null;
        bool left = replacement is null
            ? _runs.TryRemove(run)
            : _runs.TryReplace(run, replacement);
        if (!left)
        {
            return false;
        }

        _activeCount--;
        _queue.Remove(run);
        run.MarkEnded(reason, now);

        bool providerPending = run.ProviderTask is { IsCompleted: false } || (run.ProviderTask is null && !run.Released);
        if (providerPending && reason is RunEndReason.ForceEvicted or RunEndReason.Superseded)
        {
            forgotten = _ledger.Add(new AbandonedRunInfo(run.SessionId, run.RunId, run.StartedAt, run.ToWallClock(now)));
            run.Abandoned = true;
            if (forgotten is null)
            {
                _abandonedCount++;
            }
        }

        return true;
    }

    private bool TryRemoveAbandonedLocked(long runId, out AbandonedRunInfo? info)
    {
        if (_ledger.TryRemove(runId, out info))
        {
            _abandonedCount--;
            return true;
        }

        return false;
    }

    /// <summary>Everything that follows a run's end, outside the lock: abort token, logs, metrics, events, then <see cref="RunHandle.Completion"/>.</summary>
    private void Publish(RunHandle run, bool cancel, AbandonedRunInfo? forgotten = null)
    {
        if (cancel)
        {
            CancelAbortToken(run);
        }

        TimeSpan duration = TimeSpan.FromTicks(run.EndedAtTicks - run.StartedAtTicks);
        if (run.EndReason == RunEndReason.ForceEvicted)
        {
            _logger.RunForceEvicted(run.SessionId, run.RunId, duration);
        }

        if (forgotten is not null)
        {
            _logger.AbandonedRunForgotten(forgotten.SessionId, forgotten.RunId, _maxAbandonedRuns);
        }

        _logger.RunEnded(run.SessionId, run.RunId, run.EndReason, duration);
        Metrics.RecordEnded(run.EndReason, duration);
        StopActivity(run);
        if (run.Abandoned && forgotten is null)
        {
            // A full ledger swapped its oldest entry for this one: the count did not change.
            Metrics.AbandonedRuns.Add(1);
        }

        EventHandler<RunEndedEventArgs>? handlers = RunEnded;
        if (handlers is not null)
        {
            var args = new RunEndedEventArgs(run.SessionId, run.RunId, run.EndReason, duration);
            foreach (EventHandler<RunEndedEventArgs> handler in Delegate.EnumerateInvocationList(handlers))
            {
                try
                {
                    handler(this, args);
                }
#pragma warning disable CA1031 // A subscriber's failure must not break the registry or starve the other subscribers (rule 8).
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    _logger.CallbackFailed(nameof(RunEnded), run.SessionId, ex);
                }
            }
        }

        run.Complete();
    }

    /// <summary>Starts the run's activity, outside the lock (listeners are foreign code); no-op when nobody listens.</summary>
    private void StartActivity(RunHandle run)
    {
        if (!run.Traced)
        {
            return;
        }

        Activity? activity;
        try
        {
            activity = RunSupervisorActivitySource.StartRun(run.SessionId, run.RunId, run.StartedAt);
        }
#pragma warning disable CA1031 // An activity listener's failure must not fail Start: the run is already registered (rule 8).
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logger.CallbackFailed("activity listener", run.SessionId, ex);
            return;
        }

        if (activity is not null)
        {
            run.SetActivity(activity);

            // The run may have ended (superseded, disposed) on another thread before the activity was handed over;
            // its Publish then found none to stop. TakeActivity makes sure exactly one side stops it.
            if (run.Status >= RunStatus.Ended)
            {
                StopActivity(run);
            }
        }
    }

    /// <summary>Stops the run's activity, if it has one not yet stopped; outside the lock.</summary>
    private void StopActivity(RunHandle run)
    {
        if (!run.Traced || run.TakeActivity() is not { } activity)
        {
            return;
        }

        try
        {
            RunSupervisorActivitySource.StopRun(activity, run.EndReason, run.ToWallClock(run.EndedAtTicks));
        }
#pragma warning disable CA1031 // An activity listener's failure must not stop the run's end from being published (rule 8).
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logger.CallbackFailed("activity listener", run.SessionId, ex);
        }
    }

    private void CancelAbortToken(RunHandle run)
    {
        try
        {
            run.CancelAbortToken();
        }
#pragma warning disable CA1031 // The provider's cancellation callbacks are foreign code; their failure must not stop the watchdog.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logger.CallbackFailed("abort token", run.SessionId, ex);
        }
    }

    private void OnWatchdogTick()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        long armedFor = _watchdog.BeginTick();
        List<RunHandle>? timedOut = null;
        List<(RunHandle Run, AbandonedRunInfo? Forgotten)>? evicted = null;
        long now = NowTicks();
        long next;
        lock (_gate)
        {
            while (_queue.Count > 0 && _queue.MinDueTicks <= now)
            {
                RunHandle run = _queue.Peek();
                if (run.Status == RunStatus.Running)
                {
                    // The deadline. If the callback ran late, the same pass may also reach the fixed eviction instant.
                    BeginAbortLocked(run, now, timedOut: true);
                    (timedOut ??= []).Add(run);
                }
                else
                {
                    if (TryEndLocked(run, RunEndReason.ForceEvicted, now, out AbandonedRunInfo? forgotten))
                    {
                        (evicted ??= []).Add((run, forgotten));
                    }
                    else
                    {
                        // Unreachable while queue membership mirrors registry membership; never spin on it.
                        _queue.Remove(run);
                    }
                }
            }

            next = _queue.MinDueTicks;
        }

        if (timedOut is not null)
        {
            foreach (RunHandle run in timedOut)
            {
                _logger.RunTimedOut(run.SessionId, run.RunId, run.Age(now), run.ToWallClock(run.EvictAtTicks));
                CancelAbortToken(run);
            }
        }

        if (evicted is not null)
        {
            foreach ((RunHandle run, AbandonedRunInfo? forgotten) in evicted)
            {
                Publish(run, cancel: true, forgotten);
            }
        }

        // A timer that fired before the instant it was armed for rounds to milliseconds (the system timer does);
        // re-arming it for less than a millisecond would spin until the due instant.
        _watchdog.ScheduleNoLaterThan(next, minimumDelay: armedFor != long.MaxValue && now < armedFor);
    }

    /// <summary>The registry's monotonic clock, in <see cref="TimeSpan"/> ticks since the registry was created.</summary>
    private long NowTicks() => _clock.NowTicks();

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
