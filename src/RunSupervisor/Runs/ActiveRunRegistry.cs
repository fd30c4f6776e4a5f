using System.Globalization;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RunSupervisor.Leasing;

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
/// <para>All time comes from the injected <see cref="TimeProvider"/>. With <see cref="TimeProvider.System"/> the
/// watchdog runs on a dedicated thread of its own, so a starved thread pool (which hung providers cause) does not make
/// aborts and evictions late; with any other provider it runs on the provider's timer.</para>
/// </remarks>
public sealed partial class ActiveRunRegistry : IDisposable, IAsyncDisposable, IHeartbeatSource
{
    /// <summary>The longest accepted session id, in UTF-16 code units.</summary>
    public const int MaxSessionIdLength = SessionIds.MaxLength;

    private readonly RunTable _table;
    private readonly WatchdogTimer _watchdog;
    private readonly RegistryClock _clock;
    private readonly ILogger _logger;
    private readonly TimeSpan _runTimeout;
    private readonly TimeSpan _gracePeriod;
    private readonly TimeSpan _maxRunDuration;
    private readonly TimeSpan _latenessThreshold;
    private readonly int _maxAbandonedRuns;
    private readonly TimeSpan _queueTimeout;
    private readonly StartSpec _defaultSpec;
    private IRunEndListener[] _endListeners = [];
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="ActiveRunRegistry"/> class; the constructor dependency injection uses.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="timeProvider">The source of all time: deadlines, grace periods and waits.</param>
    /// <param name="logger">The logger for run transitions.</param>
    /// <param name="leaseStore">
    /// The lease store that makes a session's run exclusive across hosts; <see langword="null"/> for one process. With a
    /// store, starts are asynchronous (<see cref="StartAsync(string, RunStartOptions?, CancellationToken)"/>, <see cref="RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>).
    /// </param>
    /// <exception cref="ArgumentNullException">An argument other than <paramref name="leaseStore"/> is <see langword="null"/>.</exception>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names the option and its allowed range.</exception>
    public ActiveRunRegistry(IOptions<RunSupervisorOptions> options, TimeProvider timeProvider, ILogger<ActiveRunRegistry> logger, IRunLeaseStore? leaseStore = null)
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
        _latenessThreshold = value.WatchdogLatenessThreshold;
        _queueTimeout = value.QueueTimeout;
        _defaultSpec = new StartSpec(_runTimeout.Ticks, _gracePeriod.Ticks, value.IdleTimeout?.Ticks ?? 0, _queueTimeout.Ticks, SessionBusyBehavior.Reject, background: false, lane: 0);
        _clock = new RegistryClock(timeProvider);
        _logger = logger;
        _table = new RunTable(_maxAbandonedRuns, new LaneSet(value.Lanes), value.MaxActiveRuns, value.MaxQueuedPerSession, value.QueueOverflow);
        Metrics = new RunSupervisorMetrics(logger);
        _watchdog = new WatchdogTimer(_clock, static state => ((ActiveRunRegistry)state!).OnWatchdogTick(), this);

        RunLeaseOptions lease = value.Lease;
        _leaseStore = leaseStore;
        _hostId = lease.HostId ?? NewHostId();
        _leaseTtl = lease.LeaseTtl;
        _renewInterval = lease.RenewInterval;
        _leaseSafetyMargin = lease.LeaseSafetyMargin;
        _leaseValidTicks = _leaseTtl.Ticks - Math.Max(_leaseSafetyMargin.Ticks, _clock.ResolutionTicks);
        if (leaseStore is not null && _leaseValidTicks <= 2 * _renewInterval.Ticks)
        {
            // Only a margin below the clock's resolution gets here: the validator checked the interval against the margin.
            throw new OptionsValidationException(
                Microsoft.Extensions.Options.Options.DefaultName,
                typeof(RunSupervisorOptions),
                [string.Create(CultureInfo.InvariantCulture, $"RunSupervisorOptions.Lease.RenewInterval must be less than (LeaseTtl - LeaseSafetyMargin) / 2, with a margin of at least {TimeSpan.FromTicks(_clock.ResolutionTicks)} on TimeProvider.System (the system tick's resolution): {TimeSpan.FromTicks(_leaseValidTicks / 2)} (was {_renewInterval}).")]);
        }
        _storeTimeout = lease.AcquireTimeout;
        _remotePollInterval = lease.RemoteIdlePollInterval;
        _failOpen = lease.OnStoreUnavailable == StoreUnavailableBehavior.FailOpen;
        if (leaseStore is not null)
        {
            _remoteWaitList = new();
            _subscriptionLock = new();
            _watchedRemote = new(StringComparer.Ordinal);
            _earlySupersedes = new(StringComparer.Ordinal);
        }
    }

    /// <summary>Initializes a new instance of the <see cref="ActiveRunRegistry"/> class without dependency injection.</summary>
    /// <param name="options">The options; <see langword="null"/> for the defaults. Validated here.</param>
    /// <param name="timeProvider">The source of all time; <see langword="null"/> for <see cref="TimeProvider.System"/>.</param>
    /// <param name="loggerFactory">The logger factory; <see langword="null"/> for no logging.</param>
    /// <param name="leaseStore">The lease store that makes a session's run exclusive across hosts; <see langword="null"/> for one process.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names the option and its allowed range.</exception>
    public ActiveRunRegistry(RunSupervisorOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null, IRunLeaseStore? leaseStore = null)
        : this(
            Microsoft.Extensions.Options.Options.Create(options ?? new RunSupervisorOptions()),
            timeProvider ?? TimeProvider.System,
            loggerFactory?.CreateLogger<ActiveRunRegistry>() ?? NullLogger<ActiveRunRegistry>.Instance,
            leaseStore)
    {
    }

    /// <summary>
    /// Occurs once per run, after the run's registry entry is gone (so <see cref="IsActive(string)"/> already
    /// reflects it) and before <see cref="RunHandle.Completion"/> completes. Raised outside the registry's lock, on
    /// the thread that ended the run (the watchdog's for timeouts and evictions); an exception from a handler is
    /// logged and the other handlers still run. Handlers should be quick: a blocking handler delays the watchdog.
    /// </summary>
    public event EventHandler<RunEndedEventArgs>? RunEnded;

    /// <summary>Gets the number of active runs (one per busy session).</summary>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public int ActiveCount
    {
        get
        {
            ThrowIfDisposed();
            return _table.Count;
        }
    }

    /// <summary>Gets the number of runs in the abandoned ledger: out of the registry, provider not yet settled.</summary>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public int AbandonedCount
    {
        get
        {
            ThrowIfDisposed();
            return _table.AbandonedCount;
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
    /// <exception cref="ArgumentException"><see cref="RunStartOptions.Lane"/> names no configured lane.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.WhenBusy"/> is not <see cref="SessionBusyBehavior.Supersede"/> (this method never waits), unless the run is background work and this start is not.</exception>
    /// <exception cref="RunQueueFullException">The start's lane or the registry is at its cap of concurrent runs.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="InvalidOperationException">The registry has a lease store: a start must wait for the store, so use <see cref="StartAsync(string, RunStartOptions?, CancellationToken)"/>.</exception>
    public RunHandle Start(string sessionId, RunStartOptions? options = null)
        => new(StartCore(sessionId, options, observer: null, mayWait: false, CancellationToken.None, out StartRefusal refusal) ?? throw RefusalException(sessionId, refusal));

    /// <summary>
    /// Starts a run, waiting for admission when <see cref="RunStartOptions.WhenBusy"/> is <see cref="SessionBusyBehavior.Wait"/>
    /// and the session is busy, or when the start's lane or the registry is at its cap: first in, first out per
    /// session and per lane, at most <see cref="RunStartOptions.QueueTimeout"/>. A waiting start is admitted by the
    /// transition that frees what it waits for (release, timeout, supersede or force eviction; never by polling), and
    /// its run's deadline starts then. When admitted at once it completes synchronously and allocates no more than
    /// <see cref="Start(string, RunStartOptions?)"/>.
    /// </summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <param name="cancellationToken">Cancels the wait; a start cancelled before it is admitted never runs.</param>
    /// <returns>The run's handle. Dispose it when the run is over.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long, or <see cref="RunStartOptions.Lane"/> names no configured lane.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="SessionBusyException">The session has an active run and <see cref="RunStartOptions.WhenBusy"/> is <see cref="SessionBusyBehavior.Reject"/>; through the returned task.</exception>
    /// <exception cref="RunQueueTimeoutException">The start was not admitted within its queue timeout (at once for a zero one); through the returned task.</exception>
    /// <exception cref="RunQueueFullException">The session already has <see cref="RunSupervisorOptions.MaxQueuedPerSession"/> starts waiting, or this start was pushed out by a newer one; through the returned task.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed (also through the returned task, for a start that was waiting).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before admission; through the returned task.</exception>
    /// <exception cref="RunLeaseUnavailableException">With a lease store failing closed, the store did not answer the acquire in time; through the returned task.</exception>
    public ValueTask<RunHandle> StartAsync(string sessionId, RunStartOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            // Bad input and a disposed registry throw whatever the token says, as from RunAsync.
            SessionIds.Validate(sessionId);
            ThrowIfDisposed();
            ValidateStartOptions(options);

            return ValueTask.FromCanceled<RunHandle>(cancellationToken);
        }

        return StartAsyncCore(sessionId, options, observer: null, cancellationToken);
    }

    /// <summary>
    /// <see cref="StartAsync(string, RunStartOptions?, CancellationToken)"/> for a supervised stream, whose enumerator
    /// hears the run's end directly from the registry rather than through <see cref="RunHandle.Completion"/>.
    /// </summary>
    /// <remarks>The stream has checked its tokens already: one cancelled since then cancels the start if it must wait, or else aborts the run as soon as the stream registers on it.</remarks>
    internal ValueTask<RunHandle> StartObservedAsync(string sessionId, RunStartOptions? options, IRunEndObserver observer, CancellationToken cancellationToken)
        => StartAsyncCore(sessionId, options, observer, cancellationToken);

    /// <summary>Starts a run if the session is idle (or <see cref="RunStartOptions.WhenBusy"/> is <see cref="SessionBusyBehavior.Supersede"/>).</summary>
    /// <param name="sessionId">The session; 1 to <see cref="MaxSessionIdLength"/> characters, not only white space.</param>
    /// <param name="handle">The run's handle when the method returns <see langword="true"/>.</param>
    /// <param name="options">Per-run overrides; <see langword="null"/> for the registry's options.</param>
    /// <returns><see langword="true"/> if the run started; <see langword="false"/> if the session is busy (this method never waits) or the start's lane or the registry is at its cap.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A per-run override is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    /// <exception cref="InvalidOperationException">The registry has a lease store: a start must wait for the store, so use <see cref="StartAsync(string, RunStartOptions?, CancellationToken)"/>.</exception>
    public bool TryStart(string sessionId, [NotNullWhen(true)] out RunHandle? handle, RunStartOptions? options = null)
    {
        RunEntry? entry = StartCore(sessionId, options, observer: null, mayWait: false, CancellationToken.None, out _);
        handle = entry is null ? null : new RunHandle(entry);
        return handle is not null;
    }

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
        return _table.Find(sessionId) is not null;
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
        run = _table.Find(sessionId) is { } entry ? ToInfo(entry) : null;
        return run is not null;
    }

    /// <summary>Gets a snapshot of every active run, ordered by run id.</summary>
    /// <returns>The active runs.</returns>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public IReadOnlyList<RunInfo> GetActiveRuns()
    {
        ThrowIfDisposed();
        List<RunInfo> runs = new(_table.Count);
        foreach (RunEntry entry in _table)
        {
            runs.Add(ToInfo(entry));
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
        using (_table.EnterGate())
        {
            return _table.GetAbandonedLocked();
        }
    }

    /// <summary>
    /// Aborts the session's active run: cancels its abort token (its callbacks run on this thread before the method
    /// returns; an exception from one is logged, not thrown) and starts its grace period.
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="expectedRunId">
    /// The run the caller means. When given and the session's current run has another id (the run the caller
    /// saw has already been replaced), nothing happens.
    /// </param>
    /// <param name="reason">Why: the end's <see cref="RunEndedEventArgs.Detail"/> and the log line.</param>
    /// <returns><see langword="true"/> if a run was aborted by this call.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is empty, white space or too long.</exception>
    /// <exception cref="ObjectDisposedException">The registry is disposed.</exception>
    public bool TryAbort(string sessionId, long? expectedRunId = null, string? reason = null)
    {
        SessionIds.Validate(sessionId);
        ThrowIfDisposed();
        return _table.Find(sessionId) is { } entry
            && (expectedRunId is not long expected || entry.RunId == expected)
            && Abort(entry, reason ?? RunEnds.RegistryAbortText);
    }

    /// <summary>
    /// Stops the watchdog, fails every waiting start with <see cref="ObjectDisposedException"/> and ends every run
    /// (reason <see cref="RunEndReason.Aborted"/>) once. Abort-token callbacks run on the thread pool: disposal never
    /// waits for provider code.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _watchdog.Dispose();
        DisposeLeasing();
        long now = NowTicks();
        List<Left> ended;
        SettledStarts waiting;
        using (_table.EnterGate())
        {
            ended = _table.LeaveAllLocked(now);
            waiting = _table.TakeSettledLocked();
        }

        foreach (Left left in ended)
        {
            Publish(left);
        }

        PublishSettled(waiting);

        Metrics.Dispose();
    }

    /// <summary>Disposes the registry; see <see cref="Dispose"/>.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    /// <summary>Whether <paramref name="entry"/> is its session's current entry; lock-free.</summary>
    internal bool IsCurrent(RunEntry entry) => _table.IsCurrent(entry);

    /// <summary>Finds the session's entry without validation or the disposed check, for internal observers and tests.</summary>
    internal RunEntry? FindEntry(string sessionId) => _table.Find(sessionId);

    private RunInfo ToInfo(RunEntry entry)
        => new(entry.SessionId, entry.RunId, entry.StartedAt, entry.Deadline, entry.Status, entry.FencingToken, entry.ToWallClock(entry.LastProgressTicks), entry.Background, _table.Lanes.Names[entry.Lane]);

    /// <summary>The registry's monotonic clock, in <see cref="TimeSpan"/> ticks since the registry was created.</summary>
    internal long NowTicks() => _clock.NowTicks();

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
