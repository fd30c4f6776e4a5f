using System.Diagnostics;
using RunSupervisor.Leasing;

namespace RunSupervisor;

/// <summary>
/// The registry's record of one run: everything the transitions read and write. <see cref="RunHandle"/> is only the
/// public ticket over it. The session table and the deadline heap hold entries, never handles.
/// </summary>
/// <remarks>
/// <para>The entry is also the run's abort token source: deriving from <see cref="CancellationTokenSource"/> makes a
/// run cost one object and its handle instead of three, which keeps an uncontended start + release within the
/// allocation budget of a bare dictionary-and-timer implementation.</para>
/// <para>Fields documented as "under the gate" are written only while <see cref="RunTable.Gate"/> is held; the rest
/// are immutable after construction or written with interlocked or volatile operations, as each says.</para>
/// </remarks>
internal sealed class RunEntry : CancellationTokenSource
{
    // One completed task per reason, shared by every run that ended before anyone asked for its Completion.
    private static readonly Task<RunEndReason>[] CompletedTasks = [.. Enum.GetValues<RunEndReason>().Select(Task.FromResult)];

    // What only some runs need (a lease, a completion source, an activity) lives in one side object, so the common run
    // (no store, nobody awaiting Completion before the end, no tracing) is one record and its ticket. The small fields
    // are bytes: together with the four ints they fill one 8-byte slot, which keeps a start + release at 216 B.
    private RunExtras? _extras;
    private long _deadlineTicks;
    private long _lastProgressTicks;
    private long _dueTicks;
    private int _completed;
    private volatile byte _status;
    private byte _endReason;
    private readonly bool _leased;

    public RunEntry(ActiveRunRegistry owner, string sessionId, int sessionHash, long startedAtTicks, long startedAtUtcTicks, in StartSpec spec)
    {
        Owner = owner;
        SessionId = sessionId;
        SessionHash = sessionHash;
        StartedAtTicks = startedAtTicks;
        StartedAtUtcTicks = startedAtUtcTicks;
        GraceTicks = spec.GraceTicks;
        IdleTicks = spec.IdleTicks;
        Background = spec.Background;
        Lane = spec.Lane;
        _deadlineTicks = startedAtTicks + spec.TimeoutTicks;
        _lastProgressTicks = startedAtTicks;
        _dueTicks = spec.IdleTicks == 0 ? _deadlineTicks : Math.Min(_deadlineTicks, startedAtTicks + spec.IdleTicks);
    }

    public ActiveRunRegistry Owner { get; }

    public string SessionId { get; }

    /// <summary>Gets <see cref="SessionTable.Hash(string)"/> of <see cref="SessionId"/>, computed once at start.</summary>
    public int SessionHash { get; }

    /// <summary>Gets or sets the run's id; assigned under the gate as the entry enters the table, before any reader can see it.</summary>
    public long RunId { get; set; }

    /// <summary>Gets the fencing token: the lease's, or without one (no store, or a start let through unfenced), the run id itself.</summary>
    public long FencingToken => (_leased ? Volatile.Read(ref _extras)!.Lease?.FencingToken : null) ?? RunId;

    /// <summary>
    /// Gets a value indicating whether the registry has a lease store: such a run is entered locally first, then its
    /// lease is taken, and only then is its start published (<see cref="StartPublished"/>); a start the store refuses is
    /// withdrawn without ever appearing as a run. Only such a run carries lease state, in its side object.
    /// </summary>
    public bool Leased
    {
        get => _leased;
        init
        {
            _leased = value;
            if (value)
            {
                _extras = new RunExtras();
            }
        }
    }

    /// <summary>Gets or sets a value indicating whether the run's start has been (or is being) published; under the gate. Always true for a run without a store.</summary>
    public bool StartPublished
    {
        get => !_leased || LeaseState.StartPublished;
        set
        {
            Debug.Assert(_leased, "Only a leased run's start is published late.");
            LeaseState.StartPublished = value;
        }
    }

    /// <summary>Gets or sets the run's lease, once taken; written under the gate, read lock-free.</summary>
    public RunLease? Lease
    {
        get => _leased ? LeaseState.Lease : null;
        set => LeaseState.Lease = value;
    }

    /// <summary>Gets or sets a value indicating whether the start was withdrawn because another host holds the session: its session is not idle.</summary>
    public bool WithdrawnHeldElsewhere
    {
        get => _leased && LeaseState.HeldElsewhere;
        set => LeaseState.HeldElsewhere = value;
    }

    /// <summary>Gets or sets a value indicating whether the start was withdrawn because a drain cancelled the waiting starts as it entered: the drain reports it cancelled, not as a run.</summary>
    public bool WithdrawnByDrain
    {
        get => _leased && LeaseState.ByDrain;
        set => LeaseState.ByDrain = value;
    }

    /// <summary>Gets or sets a value indicating whether the run's lease is no longer its own (lost, or taken by another host): it is not released.</summary>
    public bool LeaseForfeited
    {
        get => _leased && LeaseState.Forfeited;
        set => LeaseState.Forfeited = value;
    }

    /// <summary>
    /// Gets or sets the instant the run stops trusting its lease: the send time of its last confirmed renew plus the
    /// time to live minus the safety margin; <see cref="long.MaxValue"/> without a lease. Only ever moves later.
    /// </summary>
    public long LeaseValidUntilTicks
    {
        get => _leased ? Volatile.Read(ref LeaseState.ValidUntilTicks) : long.MaxValue;
        set
        {
            RunExtras state = LeaseState;
            long current = Volatile.Read(ref state.ValidUntilTicks);
            while ((current == long.MaxValue || value > current) && Interlocked.CompareExchange(ref state.ValidUntilTicks, value, current) is long seen && seen != current)
            {
                current = seen;
            }
        }
    }

    // Instants are ticks of the registry's monotonic clock (RegistryClock.NowTicks), so a wall-clock step never
    // delays or hastens an abort or an eviction. Wall-clock times are derived from the start's wall-clock reading.
    public long StartedAtTicks { get; }

    public long StartedAtUtcTicks { get; }

    public DateTimeOffset StartedAt => new(StartedAtUtcTicks, TimeSpan.Zero);

    public long GraceTicks { get; }

    /// <summary>Gets the idle timeout; zero when the run has none.</summary>
    public long IdleTicks { get; }

    /// <summary>Gets a value indicating whether a foreground start on the session preempts the run.</summary>
    public bool Background { get; }

    /// <summary>Gets the run's admission lane (an index into the registry's lanes; 0 is the default lane).</summary>
    public int Lane { get; }

    /// <summary>
    /// Gets the instant of the last <see cref="ReportProgress(long)"/> (the start until the first); lock-free. Never
    /// before the start, whatever the order in which a report and the start read the clock.
    /// </summary>
    public long LastProgressTicks
    {
        get
        {
            long ticks = Volatile.Read(ref _lastProgressTicks);
            return Math.Max(ticks < 0 ? ~ticks : ticks, StartedAtTicks);
        }
    }

    /// <summary>
    /// Gets the instant the run is idle for its idle timeout, from one read of its progress: the last progress plus the
    /// idle timeout, or, while the idle clock is paused (<see cref="PauseIdleClock(long)"/>: the turn is the consumer's,
    /// so no silence is the provider's stall), one idle timeout after <paramref name="nowTicks"/>; lock-free.
    /// </summary>
    public long IdleAtTicks(long nowTicks)
    {
        long ticks = Volatile.Read(ref _lastProgressTicks);
        return (ticks < 0 ? nowTicks : ticks) + IdleTicks;
    }

    /// <summary>Gets or sets the deadline; written under the gate, read lock-free by <see cref="RunHandle.Deadline"/>.</summary>
    public long DeadlineTicks
    {
        get => Volatile.Read(ref _deadlineTicks);
        set => Volatile.Write(ref _deadlineTicks, value);
    }

    /// <summary>
    /// Gets the next instant the watchdog must look at the run, its key in the <see cref="DeadlineQueue"/>: while running,
    /// the deadline or the idle check, whichever comes first; while aborting, the eviction instant. Progress does not move
    /// the idle check (that would cost a heap update per report): the watchdog comes at the old instant, sees the newer
    /// progress and moves it then (<see cref="RecheckIdleAt(long)"/>). Written under the gate; a lock-free read may be
    /// stale, which only ever wakes the watchdog early.
    /// </summary>
    public long DueTicks => Volatile.Read(ref _dueTicks);

    /// <summary>Gets the force-eviction instant: fixed when the abort happens; while running, the deadline plus the grace period.</summary>
    public long EvictAtTicks => _status == (byte)RunStatus.Running ? DeadlineTicks + GraceTicks : DueTicks;

    /// <summary>Gets or sets the entry's slot in the <see cref="DeadlineQueue"/>, -1 when not queued; under the gate.</summary>
    public int QueueIndex { get; set; } = -1;

    public RunStatus Status => (RunStatus)_status;

    /// <summary>Gets why the run is aborting; under the gate, set with the move to <see cref="RunStatus.Aborting"/>.</summary>
    public AbortCause AbortCause { get; private set; }

    /// <summary>Gets the cause in words: the caller's abort text while aborting, then the end's detail once ended; under the gate.</summary>
    public string? Detail { get; private set; }

    /// <summary>Gets or sets the provider task handed over by <see cref="RunHandle.Attach(Task)"/>; under the gate.</summary>
    public Task? ProviderTask { get; set; }

    /// <summary>Gets or sets a value indicating whether the handle was disposed; under the gate.</summary>
    public bool Released { get; set; }

    /// <summary>Gets or sets a value indicating whether the run went to the abandoned ledger when it ended; under the gate.</summary>
    public bool Abandoned { get; set; }

    /// <summary>Gets a value indicating whether an activity listener was present when the run started: only then may it have an activity.</summary>
    public bool Traced { get; init; }

    /// <summary>Gets or sets whoever must hear of the run's end before <see cref="Completion"/> completes (a supervised invocation); set before the run can end.</summary>
    public IRunEndObserver? EndObserver { get; init; }

    /// <summary>Gets the end's reason; valid once <see cref="Status"/> is <see cref="RunStatus.Ended"/> or <see cref="RunStatus.Evicted"/>.</summary>
    public RunEndReason EndReason => (RunEndReason)_endReason;

    /// <summary>Gets the instant the run left the table; valid once ended.</summary>
    public long EndedAtTicks { get; private set; }

    public bool HasEnded => _status >= (byte)RunStatus.Ended;

    public DateTimeOffset Deadline => ToWallClock(DeadlineTicks);

    /// <summary>Gets the task that completes with the end's reason; see <see cref="RunHandle.Completion"/>.</summary>
    public Task<RunEndReason> Completion
    {
        get
        {
            if (Volatile.Read(ref _completed) != 0)
            {
                return CompletedTasks[(int)EndReason];
            }

            TaskCompletionSource<RunEndReason> completion = Volatile.Read(ref Extras.Completion) ?? CreateCompletion();
            return completion.Task;
        }
    }

    /// <summary>Records progress and restarts a paused idle clock: one volatile write, no lock, no allocation. Never moves the deadline.</summary>
    public void ReportProgress(long nowTicks) => Volatile.Write(ref _lastProgressTicks, nowTicks);

    /// <summary>
    /// Records progress and stops the idle clock until the next <see cref="ReportProgress(long)"/>: a supervised stream
    /// calls it when it hands an update to its consumer, because the time the consumer keeps it is not the provider's
    /// silence. The pause is the progress instant stored complemented (monotonic instants are never negative), so it
    /// costs no field and the write stays one volatile store. Never moves the deadline.
    /// </summary>
    public void PauseIdleClock(long nowTicks) => Volatile.Write(ref _lastProgressTicks, ~nowTicks);

    /// <summary>Converts an instant of the monotonic clock to wall-clock time, anchored at the run's start.</summary>
    public DateTimeOffset ToWallClock(long ticks) => new(StartedAtUtcTicks + (ticks - StartedAtTicks), TimeSpan.Zero);

    public TimeSpan Age(long nowTicks) => TimeSpan.FromTicks(nowTicks - StartedAtTicks);

    /// <summary>Moves the run to <see cref="RunStatus.Aborting"/>, to be evicted at <paramref name="evictAtTicks"/>; under the gate.</summary>
    public void SetAborting(AbortCause cause, string? detail, long evictAtTicks)
    {
        Debug.Assert(_status == (byte)RunStatus.Running, "Only a running run starts aborting.");
        AbortCause = cause;
        Detail = detail;
        Volatile.Write(ref _dueTicks, evictAtTicks);
        _status = (byte)RunStatus.Aborting;
    }

    /// <summary>Moves a running run's deadline, only ever later; under the gate.</summary>
    public void MoveDeadline(long deadlineTicks)
    {
        Debug.Assert(_status == (byte)RunStatus.Running && deadlineTicks >= DeadlineTicks, "Only a running run's deadline moves, and only later.");
        DeadlineTicks = deadlineTicks;

        // With an idle timeout the due instant stays where it is: it is at most the old deadline, and a look then finds
        // the new deadline ahead and checks progress, as at any idle check. Without one, the deadline is all there is.
        if (IdleTicks == 0)
        {
            Volatile.Write(ref _dueTicks, deadlineTicks);
        }
    }

    /// <summary>Sets when the watchdog next looks at a running run's progress, found idle no earlier than <paramref name="idleAtTicks"/>; under the gate.</summary>
    public void RecheckIdleAt(long idleAtTicks)
    {
        Debug.Assert(_status == (byte)RunStatus.Running && IdleTicks != 0, "Only a running run with an idle timeout is checked for progress.");
        Volatile.Write(ref _dueTicks, Math.Min(DeadlineTicks, idleAtTicks));
    }

    /// <summary>Marks the run as out of the table; under the gate, by the one transition that removed it.</summary>
    public void MarkEnded(RunEndReason reason, string? detail, long nowTicks)
    {
        Debug.Assert(_status < (byte)RunStatus.Ended, "A run ends once.");
        _endReason = (byte)reason;
        Detail = detail;
        EndedAtTicks = nowTicks;
        _status = (byte)(reason == RunEndReason.ForceEvicted ? RunStatus.Evicted : RunStatus.Ended);
    }

    /// <summary>Completes <see cref="Completion"/>; once, by the thread that published the end.</summary>
    public void Complete()
    {
        // A full fence between marking the run completed and reading the source pairs with CreateCompletion, which
        // installs the source and then reads the mark: at least one side sees the other and completes it.
        Interlocked.Exchange(ref _completed, 1);
        Volatile.Read(ref _extras)?.Completion?.TrySetResult(EndReason);
    }

    /// <summary>Hands over the run's activity (only when a listener sampled it); see <see cref="TakeActivity"/>.</summary>
    /// <remarks>A full fence (not a volatile write): the caller reads <see cref="Status"/> next, and that read must not move before this write.</remarks>
    public void SetActivity(Activity activity) => Interlocked.Exchange(ref Extras.Activity, activity);

    /// <summary>Takes the run's activity, at most once across threads: whoever gets it stops it.</summary>
    public Activity? TakeActivity() => Volatile.Read(ref _extras) is { } extras ? Interlocked.Exchange(ref extras.Activity, null) : null;

    // Only a leased run reads its lease state, and it got its side object at construction.
    private RunExtras LeaseState
    {
        get
        {
            Debug.Assert(_leased, "Only a leased run has lease state.");
            return _extras!;
        }
    }

    // The side object, created on first need by whichever thread needs it first.
    private RunExtras Extras => Volatile.Read(ref _extras) ?? CreateExtras();

    private RunExtras CreateExtras()
    {
        var created = new RunExtras();
        return Interlocked.CompareExchange(ref _extras, created, null) ?? created;
    }

    private TaskCompletionSource<RunEndReason> CreateCompletion()
    {
        var created = new TaskCompletionSource<RunEndReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        TaskCompletionSource<RunEndReason> completion = Interlocked.CompareExchange(ref Extras.Completion, created, null) ?? created;
        if (Volatile.Read(ref _completed) != 0)
        {
            completion.TrySetResult(EndReason);
        }

        return completion;
    }

    /// <summary>
    /// What only some runs need: a leased run's lease and how far it trusts it (made with the run), the completion source
    /// for a <see cref="Completion"/> asked for before the end, and a traced run's activity (each made when first needed).
    /// </summary>
    private sealed class RunExtras
    {
        public long ValidUntilTicks = long.MaxValue;

        public TaskCompletionSource<RunEndReason>? Completion;

        public Activity? Activity;

        private volatile RunLease? _lease;

        public RunLease? Lease
        {
            get => _lease;
            set => _lease = value;
        }

        public bool StartPublished { get; set; }

        public bool Forfeited { get; set; }

        public bool HeldElsewhere { get; set; }

        public bool ByDrain { get; set; }
    }
}
