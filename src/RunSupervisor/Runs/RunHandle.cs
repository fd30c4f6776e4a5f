using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// One run's ticket, issued by <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/>. Dispose it when
/// the run is over (a <c>using</c> block); pass <see cref="AbortToken"/> to the provider call.
/// </summary>
/// <remarks>
/// <para>All members are thread-safe. Disposal is idempotent and never throws: disposing a handle that is no
/// longer its session's current run (it was evicted, superseded or already released) changes nothing in the
/// registry, so a late <c>finally</c> can never remove a newer run.</para>
/// <para>A run leaves the registry exactly once, and <see cref="Completion"/> completes exactly once, after
/// the registry entry is gone and <see cref="ActiveRunRegistry.RunEnded"/> has been raised.</para>
/// </remarks>
public sealed class RunHandle : IDisposable, IAsyncDisposable
{
    private readonly ActiveRunRegistry _registry;
    private readonly CancellationTokenSource _abort = new();
    // One completed task per reason, shared by every run that ended before anyone asked for its Completion.
    private static readonly Task<RunEndReason>[] CompletedTasks = [.. Enum.GetValues<RunEndReason>().Select(Task.FromResult)];

    // Created only when someone asks for Completion before the run has ended: most runs never need one.
    private TaskCompletionSource<RunEndReason>? _completion;
    private int _completed;
    private volatile RunStatus _status;
    private long _deadlineTicks;
    private Activity? _activity;

    internal RunHandle(ActiveRunRegistry registry, string sessionId, int sessionHash, DateTimeOffset startedAt, long startedAtTicks, TimeSpan timeout, TimeSpan gracePeriod, TimeSpan maxRunDuration)
    {
        _registry = registry;
        SessionId = sessionId;
        SessionHash = sessionHash;
        StartedAt = startedAt;
        StartedAtTicks = startedAtTicks;
        GracePeriod = gracePeriod;
        _deadlineTicks = startedAtTicks + timeout.Ticks;
        EvictAtTicks = _deadlineTicks + gracePeriod.Ticks;
        MaxDeadlineTicks = startedAtTicks + maxRunDuration.Ticks;
    }

    /// <summary>Gets the session this run belongs to.</summary>
    public string SessionId { get; }

    /// <summary>
    /// Gets the run's id: unique within the registry and increasing in start order, so a newer run on the same
    /// session always has a larger id. Use it as a fencing token (for example with
    /// <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>).
    /// </summary>
    public long RunId { get; internal set; }

    /// <summary>Gets when the run started, from the registry's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset StartedAt { get; }

    /// <summary>Gets the run's current deadline; <see cref="TryExtendDeadline(TimeSpan)"/> may move it later.</summary>
    public DateTimeOffset Deadline => ToWallClock(Volatile.Read(ref _deadlineTicks));

    /// <summary>
    /// Gets the token the provider call must observe. It is cancelled when the run is aborted, times out, is
    /// superseded or force-evicted, or the registry is disposed; it is not cancelled by a normal release.
    /// </summary>
    public CancellationToken AbortToken => _abort.Token;

    /// <summary>Gets the run's status.</summary>
    public RunStatus Status => _status;

    /// <summary>
    /// Gets a value indicating whether this run is still its session's entry in the registry. Once false it
    /// stays false; a host can use it to suppress late output of an evicted or superseded run.
    /// </summary>
    public bool IsCurrent => _registry.IsCurrent(this);

    /// <summary>
    /// Gets a task that completes, once, with the reason the run left the registry. It never faults or is
    /// cancelled, and its continuations run asynchronously.
    /// </summary>
    public Task<RunEndReason> Completion
    {
        get
        {
            if (Volatile.Read(ref _completed) != 0)
            {
                return CompletedTasks[(int)EndReason];
            }

            TaskCompletionSource<RunEndReason> completion = Volatile.Read(ref _completion) ?? CreateCompletion();
            return completion.Task;
        }
    }

    // Watchdog state below is guarded by the registry's gate. Instants are ticks of the registry's monotonic
    // clock (TimeProvider.GetTimestamp), so a wall-clock step never delays or hastens an abort or an eviction.
    internal long StartedAtTicks { get; }

    /// <summary>Gets <see cref="SessionTable.Hash(string)"/> of <see cref="SessionId"/>, computed once at start.</summary>
    internal int SessionHash { get; }

    internal long MaxDeadlineTicks { get; }

    internal TimeSpan GracePeriod { get; }

    internal long DeadlineTicks
    {
        get => Volatile.Read(ref _deadlineTicks);
        set => Volatile.Write(ref _deadlineTicks, value);
    }

    /// <summary>Gets or sets the instant (monotonic ticks) at which the run is force-evicted if still present; fixed when the deadline is set.</summary>
    internal long EvictAtTicks { get; set; }

    /// <summary>Gets or sets the run's slot in the <see cref="DeadlineQueue"/>, -1 when not queued.</summary>
    internal int QueueIndex { get; set; } = -1;

    /// <summary>Gets or sets the next instant the watchdog must look at this run: the deadline while running, the eviction instant while aborting.</summary>
    internal long DueTicks { get; set; }

    internal bool TimedOut { get; set; }

    internal Task? ProviderTask { get; set; }

    internal bool Released { get; set; }

    /// <summary>Gets or sets a value indicating whether the run went to the abandoned ledger when it ended.</summary>
    internal bool Abandoned { get; set; }

    /// <summary>Gets a value indicating whether an activity listener was present when the run started: only then may it have an activity.</summary>
    internal bool Traced { get; init; }

    internal RunEndReason EndReason { get; private set; }

    internal long EndedAtTicks { get; private set; }

    internal TimeSpan Age(long nowTicks) => TimeSpan.FromTicks(nowTicks - StartedAtTicks);

    /// <summary>Converts an instant of the monotonic clock to wall-clock time, anchored at the run's start.</summary>
    internal DateTimeOffset ToWallClock(long ticks) => StartedAt + TimeSpan.FromTicks(ticks - StartedAtTicks);

    /// <summary>
    /// Hands the run's provider task to the registry. When it settles (completes, faults or is cancelled) the
    /// run is released with the matching reason. If the run is evicted or superseded while the task is still
    /// pending, the run goes to the abandoned ledger until the task settles; its exception is always observed.
    /// </summary>
    /// <param name="providerTask">The task of the provider call that uses <see cref="AbortToken"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="providerTask"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A task was already attached to this run.</exception>
    public void Attach(Task providerTask)
    {
        ArgumentNullException.ThrowIfNull(providerTask);
        _registry.Attach(this, providerTask);
        if (providerTask.IsCompleted)
        {
            _registry.OnProviderSettled(this, providerTask);
        }
        else
        {
            providerTask.ContinueWith(
                static (task, state) => { var run = (RunHandle)state!; run._registry.OnProviderSettled(run, task); },
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Aborts the run: cancels <see cref="AbortToken"/> and starts the grace period, after which the run is
    /// force-evicted if it has not settled.
    /// </summary>
    /// <param name="reason">Why the run is aborted, for the log.</param>
    /// <returns><see langword="true"/> if this call aborted the run; <see langword="false"/> if it was already aborting or has ended.</returns>
    public bool Abort(string? reason = null) => _registry.AbortRun(this, reason ?? "RunHandle.Abort was called");

    /// <summary>
    /// Moves the deadline later by <paramref name="extension"/>, for a long step such as a compaction. The
    /// deadline never passes <see cref="StartedAt"/> + <see cref="RunSupervisorOptions.MaxRunDuration"/>;
    /// progress alone never renews it.
    /// </summary>
    /// <param name="extension">How much later the deadline should be; greater than zero.</param>
    /// <returns><see langword="true"/> if the deadline moved; <see langword="false"/> (and nothing changed) if the run is not running or the cap would be passed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="extension"/> is zero or negative.</exception>
    public bool TryExtendDeadline(TimeSpan extension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(extension, TimeSpan.Zero);
        return _registry.TryExtendDeadline(this, extension);
    }

    /// <summary>
    /// Releases the run if it is still its session's current run; otherwise does nothing to the registry.
    /// Idempotent; never throws.
    /// </summary>
    public void Dispose() => _registry.Release(this);

    /// <summary>Releases the run; see <see cref="Dispose"/>.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    /// <summary>Returns a short description of the run for debugging.</summary>
    /// <returns>The session id, run id and status.</returns>
    public override string ToString() => $"Run {RunId} (session '{SessionId}', {Status})";

    internal void SetAborting() => _status = RunStatus.Aborting;

    internal void MarkEnded(RunEndReason reason, long nowTicks)
    {
        EndReason = reason;
        EndedAtTicks = nowTicks;
        _status = reason == RunEndReason.ForceEvicted ? RunStatus.Evicted : RunStatus.Ended;
    }

    /// <summary>Cancels the abort token; callbacks registered by the provider run here, on this thread.</summary>
    internal void CancelAbortToken() => _abort.Cancel();

    internal bool IsAbortRequested => _abort.IsCancellationRequested;

    internal void Complete()
    {
        // A full fence between marking the run completed and reading the source pairs with CreateCompletion, which
        // installs the source and then reads the mark: at least one side sees the other and completes it.
        Interlocked.Exchange(ref _completed, 1);
        Volatile.Read(ref _completion)?.TrySetResult(EndReason);
    }

    private TaskCompletionSource<RunEndReason> CreateCompletion()
    {
        var created = new TaskCompletionSource<RunEndReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        TaskCompletionSource<RunEndReason> completion = Interlocked.CompareExchange(ref _completion, created, null) ?? created;
        if (Volatile.Read(ref _completed) != 0)
        {
            completion.TrySetResult(EndReason);
        }

        return completion;
    }

    /// <summary>Hands over the run's activity (only when a listener sampled it); see <see cref="TakeActivity"/>.</summary>
    /// <remarks>A full fence (not a volatile write): the caller reads <see cref="Status"/> next, and that read must not move before this write.</remarks>
    internal void SetActivity(Activity activity) => Interlocked.Exchange(ref _activity, activity);

    /// <summary>Takes the run's activity, at most once across threads: whoever gets it stops it.</summary>
    internal Activity? TakeActivity() => Interlocked.Exchange(ref _activity, null);
}
