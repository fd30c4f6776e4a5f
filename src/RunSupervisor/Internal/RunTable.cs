using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace RunSupervisor;

/// <summary>
/// Owns every state transition of the registry's runs: enter, begin abort, extend, leave, forget abandoned and collect
/// due work. Each transition runs under <see cref="Gate"/> and returns a value saying what happened; the registry reads
/// the clock before, and publishes the result after, outside the gate.
/// </summary>
/// <remarks>
/// <para><b>Lock order.</b> <see cref="Gate"/> is the innermost lock of RunSupervisor: nothing is called under it but
/// these structures (no <see cref="TimeProvider"/>, timer, logger, meter, listener, event handler, cancellation
/// callback or lease store: a <see cref="TimeProvider"/> may run due timer callbacks inside any of its methods, on this
/// thread, and callbacks must never see a half-made transition). The watchdog's schedule lock and the heartbeat
/// policy's lock are never taken while it is held, and it is never taken while they are held. The registry's lease
/// subscription lock guards only the subscription's handle and task; the gate is never taken under it, nor it under
/// the gate. A lease store's own locks are the store's: the registry never calls a store with any of its locks held.</para>
/// <para>Queries (<see cref="Find(string, int)"/>, <see cref="Count"/>, <see cref="AbandonedCount"/>, enumeration) take
/// no lock.</para>
/// </remarks>
internal sealed class RunTable
{
    private readonly SessionTable _sessions;
    private readonly DeadlineQueue _deadlines;
    private readonly AbandonedRunLedger _ledger;
    private readonly LaneSet _lanes;
    private readonly int[] _laneActive;
    private readonly int _maxActive;
    private readonly int _maxQueuedPerSession;
    private readonly QueueOverflowBehavior _overflow;
    private readonly AdmissionQueue _queue;
    private long _lastRunId;

    // Waiting starts that left the queue (admitted or failed) during the current hold of the gate; taken by the
    // registry before it releases the gate, and completed after.
    private SettledStarts _settled;
    private bool _closed;

    public RunTable(int maxAbandonedRuns, LaneSet? lanes = null, int maxActiveRuns = 0, int maxQueuedPerSession = 20, QueueOverflowBehavior overflow = QueueOverflowBehavior.RejectNewest)
    {
        _sessions = new SessionTable(Gate);
        _deadlines = new DeadlineQueue(Gate);
        _ledger = new AbandonedRunLedger(maxAbandonedRuns, Gate);
        _lanes = lanes ?? new LaneSet(new Dictionary<string, int>());
        _laneActive = new int[_lanes.Count];
        _maxActive = maxActiveRuns;
        _maxQueuedPerSession = maxQueuedPerSession;
        _overflow = overflow;
        _queue = new AdmissionQueue(Gate, _lanes.Count);
    }

    /// <summary>Gets the registry's lanes.</summary>
    public LaneSet Lanes => _lanes;

    /// <summary>Gets the lock every transition runs under.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Gets the number of runs in the table; lock-free.</summary>
    public int Count => _sessions.Count;

    /// <summary>Gets the number of runs in the abandoned ledger; lock-free.</summary>
    public int AbandonedCount => _ledger.Count;

    /// <summary>Gets the earliest instant the watchdog must look at; under the gate.</summary>
    public long NextDueTicksLocked
    {
        get
        {
            Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
            return Math.Min(_deadlines.MinDueTicks, _queue.Count == 0 ? long.MaxValue : _queue.NextTimeoutTicksLocked());
        }
    }

    /// <summary>Gets how many starts may wait for one session (<see cref="RunSupervisorOptions.MaxQueuedPerSession"/>).</summary>
    public int MaxQueuedPerSession => _maxQueuedPerSession;

    /// <summary>Gets what a full session queue does (<see cref="RunSupervisorOptions.QueueOverflow"/>).</summary>
    public QueueOverflowBehavior QueueOverflow => _overflow;

    /// <summary>Gets the number of starts waiting for <paramref name="sessionId"/>; lock-free.</summary>
    public int QueuedCount(string sessionId) => _queue.CountFor(sessionId);

    public RunEntry? Find(string sessionId) => _sessions.Find(sessionId);

    public RunEntry? Find(string sessionId, int hash) => _sessions.Find(sessionId, hash);

    /// <summary>Gets a value indicating whether <paramref name="entry"/> is its session's entry; lock-free.</summary>
    public bool IsCurrent(RunEntry entry) => ReferenceEquals(_sessions.Find(entry.SessionId, entry.SessionHash), entry);

    public SessionTable.Enumerator GetEnumerator() => _sessions.GetEnumerator();

    /// <summary>Takes the gate; disposing the scope checks the invariants (debug builds) and releases it.</summary>
    /// <returns>The scope.</returns>
    public GateScope EnterGate() => new(this);

    /// <summary>
    /// Puts <paramref name="entry"/> in the table with the next run id, if its session, its lane and the registry have
    /// room. A busy session refuses (handing the id back) unless the start supersedes, or preempts a background run
    /// with a foreground one: the old run is replaced in place and leaves <see cref="RunEndReason.Superseded"/> in the
    /// same step, so readers never see the session idle. A start that waits (<see cref="SessionBusyBehavior.Wait"/>)
    /// never overtakes the session's waiting starts.
    /// </summary>
    public EnterResult EnterLocked(RunEntry entry, SessionBusyBehavior whenBusy, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");

        // Ids increase in the order runs enter the table, so a session's newer run always has the larger id. Assigned
        // before the entry is published (lock-free readers may see it at once) and handed back on refusal.
        entry.RunId = ++_lastRunId;
        RunEntry? current = _sessions.Find(entry.SessionId, entry.SessionHash);
        if (current is null)
        {
            if (whenBusy == SessionBusyBehavior.Wait && _queue.HasWaitersLocked(entry.SessionId))
            {
                return Refuse(EnterOutcome.Busy, current: null, limit: 0);
            }

            if (FullLimitLocked(entry.Lane, replaced: null) is int full)
            {
                return Refuse(EnterOutcome.Full, current: null, full);
            }

            bool added = _sessions.TryAdd(entry, out _);
            Debug.Assert(added, "The session was free under the gate.");
            _deadlines.Add(entry);
            _laneActive[entry.Lane]++;
            if (entry.Background && _queue.HasWaitersLocked(entry.SessionId))
            {
                // Past the session's waiting starts (it did not wait): a foreground one among them would preempt it.
                _queue.SessionTurnedBackgroundLocked(entry.SessionId);
                AdmitWaitingLocked(nowTicks);
            }

            return new EnterResult(EnterOutcome.Entered, current: null, superseded: default, limit: 0);
        }

        if (!Replaces(whenBusy, entry.Background, current) || OvertakesForegroundWaiterLocked(whenBusy, entry.Background, current))
        {
            return Refuse(EnterOutcome.Busy, current, limit: 0);
        }

        if (FullLimitLocked(entry.Lane, replaced: current) is int limit)
        {
            return Refuse(EnterOutcome.Full, current, limit);
        }

        // The new run takes its slot before the old one frees its own, so the freed slot cannot go to a waiter first.
        _laneActive[entry.Lane]++;
        Left superseded = ReplaceLocked(current, entry, nowTicks);
        return new EnterResult(EnterOutcome.Entered, current: null, superseded, limit: 0);

        EnterResult Refuse(EnterOutcome outcome, RunEntry? current, int limit)
        {
            _lastRunId--;
            return new EnterResult(outcome, current, superseded: default, limit);
        }
    }

    /// <summary>
    /// Queues a start that could not enter. With <see cref="RunSupervisorOptions.MaxQueuedPerSession"/> reached, either
    /// refuses it (returns the failure) or pushes the session's oldest start out, which fails.
    /// </summary>
    /// <returns>The new start's failure, or <see langword="null"/> when it was queued.</returns>
    public Exception? EnqueueLocked(PendingStart start, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        string? laneName = _lanes.Names[start.Spec.Lane];
        if (_queue.CountFor(start.SessionId) >= _maxQueuedPerSession)
        {
            if (_overflow == QueueOverflowBehavior.RejectNewest)
            {
                return RunQueueFullException.SessionQueueFull(start.SessionId, laneName, _maxQueuedPerSession, pushedOut: false);
            }

            PendingStart oldest = _queue.OldestLocked(start.SessionId)!;
            LeaveQueueLocked(oldest, RunQueueFullException.SessionQueueFull(start.SessionId, _lanes.Names[oldest.Spec.Lane], _maxQueuedPerSession, pushedOut: true), nowTicks);

            // The new start takes its place in this same step: the session was never idle.
            oldest.LeftSessionIdle = false;
        }

        RunEntry? current = _sessions.Find(start.SessionId, start.SessionHash);
        bool readyAnyway = current is null
            ? start.Spec.WhenBusy == SessionBusyBehavior.Supersede
            : Replaces(start.Spec, current) && !OvertakesForegroundWaiterLocked(start.Spec.WhenBusy, start.Spec.Background, current);
        _queue.EnqueueLocked(start, sessionFree: current is null, readyAnyway);
        AdmitWaitingLocked(nowTicks);
        return null;
    }

    /// <summary>Takes a waiting start out of the queue with <paramref name="failure"/> (its caller cancelled).</summary>
    /// <returns><see langword="true"/> if it was still waiting.</returns>
    public bool CancelWaitingLocked(PendingStart start, Exception failure, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (!start.IsQueued)
        {
            return false;
        }

        LeaveQueueLocked(start, failure, nowTicks);
        AdmitWaitingLocked(nowTicks);
        return true;
    }

    /// <summary>Fails every waiting start, oldest first, for a drain that cancels waiting; each gets its own exception.</summary>
    /// <returns>The starts taken out, oldest first.</returns>
    public List<PendingStart> CancelAllWaitingLocked(Func<PendingStart, Exception> failure, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        List<PendingStart> all = _queue.SnapshotLocked();
        foreach (PendingStart start in all)
        {
            LeaveQueueLocked(start, failure(start), nowTicks);
        }

        return all;
    }

    /// <summary>Lists every waiting start, oldest first, for a snapshot.</summary>
    public List<PendingStart> GetWaitingLocked()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        return _queue.SnapshotLocked();
    }

    /// <summary>Takes the waiting starts that left the queue during this hold of the gate, to complete after it.</summary>
    public SettledStarts TakeSettledLocked()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        SettledStarts settled = _settled;
        _settled = default;
        return settled;
    }

    /// <summary>Moves a running, current run to <see cref="RunStatus.Aborting"/> and fixes its eviction instant.</summary>
    /// <returns><see langword="true"/> if this call began the abort.</returns>
    public bool BeginAbortLocked(RunEntry entry, AbortCause cause, string? detail, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (entry.Status != RunStatus.Running || !IsCurrent(entry))
        {
            return false;
        }

        // The run is evicted one grace period after its abort, but never later than one after its deadline: a caller's
        // or an idle abort counts from its instant, and a deadline abort (which the watchdog makes at or after the
        // deadline, never before) from the deadline itself, however late its tick came.
        entry.SetAborting(cause, detail, Math.Min(entry.DeadlineTicks, nowTicks) + entry.GraceTicks);
        _deadlines.Update(entry);
        return true;
    }

    /// <summary>
    /// Moves a running, current run's deadline later, never past <paramref name="maxDeadlineTicks"/>, unless it has
    /// passed already: a watchdog tick that is late (or reads the clock just before this takes the gate) must find the
    /// run due, not bought more time after the fact.
    /// </summary>
    /// <returns><see langword="true"/> if the deadline moved.</returns>
    public bool ExtendLocked(RunEntry entry, long extensionTicks, long maxDeadlineTicks, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (entry.Status != RunStatus.Running || !IsCurrent(entry))
        {
            return false;
        }

        long deadline = entry.DeadlineTicks;
        if (deadline <= nowTicks || extensionTicks > maxDeadlineTicks - deadline)
        {
            return false;
        }

        // Only ever later: the pending wake-up may now be early, and an early tick just re-arms.
        entry.MoveDeadline(deadline + extensionTicks);
        _deadlines.Update(entry);
        return true;
    }

    /// <summary>Records the provider task of a run; throws if one is already attached.</summary>
    public void AttachLocked(RunEntry entry, Task providerTask)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (entry.ProviderTask is not null)
        {
            throw new InvalidOperationException($"A provider task is already attached to run {entry.RunId}.");
        }

        entry.ProviderTask = providerTask;
    }

    /// <summary>
    /// The one place a run leaves the table. Succeeds once per run: the entry is removed only if it is still this very
    /// entry (or replaced by <paramref name="replacement"/>), so a stale caller can never touch a newer run. A run that
    /// leaves while its provider is pending, by eviction or supersede, goes to the abandoned ledger.
    /// </summary>
    /// <param name="entry">The run.</param>
    /// <param name="trigger">What made it leave.</param>
    /// <param name="nowTicks">Now.</param>
    /// <param name="replacement">The run that replaces it in place, for a local supersede.</param>
    /// <param name="detail">The end's detail when the trigger alone cannot say it (a lease lost, a supersede from another host).</param>
    public Left LeaveLocked(RunEntry entry, EndTrigger trigger, long nowTicks, RunEntry? replacement = null, string? detail = null)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool removed = replacement is null ? _sessions.TryRemove(entry) : _sessions.TryReplace(entry, replacement);
        if (!removed)
        {
            return default;
        }

        _deadlines.Remove(entry);
        _laneActive[entry.Lane]--;
        RunEndReason reason = RunEnds.Decide(entry, trigger);
        long replacementRunId = replacement?.RunId ?? 0;
        // A transition reads the clock before it takes the gate, so the run may have entered, or been aborted by the
        // watchdog, after that reading: an end is never stamped before its run's start, nor before its abort (an
        // abort's instant is at least its eviction instant less the grace period).
        nowTicks = Math.Max(nowTicks, entry.StartedAtTicks);
        if (entry.Status == RunStatus.Aborting)
        {
            nowTicks = Math.Max(nowTicks, entry.EvictAtTicks - entry.GraceTicks);
        }

        entry.MarkEnded(reason, detail ?? RunEnds.Describe(entry, reason, trigger, replacementRunId), nowTicks);
        AbandonedRunInfo? forgotten = null;
        bool providerPending = entry.ProviderTask is { IsCompleted: false } || (entry.ProviderTask is null && !entry.Released);
        if (providerPending && entry.StartPublished && reason is RunEndReason.ForceEvicted or RunEndReason.Superseded or RunEndReason.LeaseLost)
        {
            forgotten = _ledger.Add(new AbandonedRunInfo(entry.SessionId, entry.RunId, entry.StartedAt, entry.ToWallClock(nowTicks)));
            entry.Abandoned = true;
        }

        // What the run frees (its session, its lane slot, a global slot) goes to the waiting starts in this same step.
        if (replacement is null)
        {
            _queue.SessionFreedLocked(entry.SessionId);
        }

        AdmitWaitingLocked(nowTicks);
        bool cancel = trigger is EndTrigger.Evicted or EndTrigger.Superseded or EndTrigger.Preempted or EndTrigger.Disposed or EndTrigger.LeaseLost or EndTrigger.Withdrawn;
        bool sessionIdle = replacement is null && trigger != EndTrigger.Disposed
            && _sessions.Find(entry.SessionId, entry.SessionHash) is null && _queue.CountFor(entry.SessionId) == 0;
        return new Left(entry, cancel, sessionIdle, forgotten, quiet: !entry.StartPublished);
    }

    /// <summary>
    /// Marks a leased run's start as published now that its lease is held; under the gate, so a concurrent end sees
    /// either an unpublished run (and leaves quietly) or a published one (and is published).
    /// </summary>
    /// <returns><see langword="true"/> if the run is still current and its start is now to be published.</returns>
    public bool ConfirmStartLocked(RunEntry entry, Leasing.RunLease? lease, long validUntilTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        Debug.Assert(entry.Leased && !entry.StartPublished, "Only a leased run awaiting its lease is confirmed.");
        if (entry.HasEnded || !IsCurrent(entry))
        {
            return false;
        }

        entry.Lease = lease;
        if (lease is not null)
        {
            entry.LeaseValidUntilTicks = validUntilTicks;
        }

        entry.StartPublished = true;
        return true;
    }

    /// <summary>Marks the handle released; returns whether this was the first release.</summary>
    public bool MarkReleasedLocked(RunEntry entry)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool first = !entry.Released;
        entry.Released = true;
        return first;
    }

    /// <summary>Removes a settled run from the abandoned ledger.</summary>
    /// <returns>Its record, if it was still there (a full ledger may have forgotten it).</returns>
    public AbandonedRunInfo? ForgetAbandonedLocked(long runId)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        return _ledger.TryRemove(runId, out AbandonedRunInfo? info) ? info : null;
    }

    public AbandonedRunInfo[] GetAbandonedLocked()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        return _ledger.ToArray();
    }

    /// <summary>
    /// Takes every due instant up to <paramref name="nowTicks"/>: a running run at its deadline, or idle for its idle
    /// timeout, begins aborting (and, if the tick is late, the same pass may reach its fixed eviction instant too); a
    /// running run whose idle check comes after newer progress is simply checked again later; an aborting run at its
    /// eviction instant leaves; a waiting start at its queue timeout fails.
    /// </summary>
    /// <param name="nowTicks">Now.</param>
    /// <param name="timedOut">Receives the runs that began aborting, with the instant each was due.</param>
    /// <param name="evicted">Receives the runs that left, with the instant each was due.</param>
    public void CollectDueLocked(long nowTicks, ref List<(RunEntry Entry, long DueTicks)>? timedOut, ref List<(Left Left, long DueTicks)>? evicted)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        while (_deadlines.Count > 0 && _deadlines.MinDueTicks <= nowTicks)
        {
            RunEntry entry = _deadlines.Peek();
            if (entry.Status == RunStatus.Running)
            {
                if (entry.DeadlineTicks <= nowTicks)
                {
                    // A late tick may find the idle instant passed too: a run silent since before its deadline stalled
                    // first, and ends as an on-time tick would have ended it (Stalled, evicted one grace period after
                    // that instant), not by whichever instant the tick happens to test first.
                    long stalledAt = entry.IdleTicks > 0 ? entry.IdleAtTicks(nowTicks) : long.MaxValue;
                    if (stalledAt < entry.DeadlineTicks)
                    {
                        BeginAbortLocked(entry, AbortCause.Idle, detail: null, stalledAt);
                        (timedOut ??= []).Add((entry, stalledAt));
                        continue;
                    }

                    // Lateness is measured from the deadline itself: the heap may have woken the watchdog for an older
                    // idle check, which is not when the abort was due.
                    BeginAbortLocked(entry, AbortCause.Deadline, detail: null, nowTicks);
                    (timedOut ??= []).Add((entry, entry.DeadlineTicks));
                    continue;
                }

                // The idle check: progress since the last look moves it (lazily, here, not on every report). While the
                // clock is paused the consumer holds the turn: look again one idle period later.
                long idleAt = entry.IdleAtTicks(nowTicks);
                if (idleAt > nowTicks)
                {
                    entry.RecheckIdleAt(idleAt);
                    _deadlines.Update(entry);
                    continue;
                }

                // Aborted as of the idle instant, so a late tick never adds to its grace period; its lateness is
                // measured from that instant too, not from the stale check that woke the watchdog (the deadline is
                // still ahead, so the due instant is that check).
                long idleDue = Math.Max(idleAt, entry.DueTicks);
                BeginAbortLocked(entry, AbortCause.Idle, detail: null, idleDue);
                (timedOut ??= []).Add((entry, idleDue));
                continue;
            }

            // A late tick first fails the waiting starts whose queue timeout came before this eviction instant, as an
            // on-time tick would have: the eviction must not admit a start that had already given up.
            long evictDue = entry.EvictAtTicks;
            if (TimeOutWaitingLocked(evictDue - 1, nowTicks))
            {
                // What those starts' leaving admitted may have replaced this very run: look again.
                continue;
            }

            Left left = LeaveLocked(entry, EndTrigger.Evicted, nowTicks);
            Debug.Assert(left.HasLeft, "Every queued entry is in the table.");
            (evicted ??= []).Add((left, evictDue));
        }

        _ = TimeOutWaitingLocked(nowTicks, nowTicks);
    }

    /// <summary>Fails the waiting starts whose queue timeout is at or before <paramref name="dueByTicks"/>, each admitting what its leaving frees.</summary>
    /// <returns><see langword="true"/> if any start timed out.</returns>
    private bool TimeOutWaitingLocked(long dueByTicks, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool any = false;
        while (_queue.Count > 0 && _queue.TakeTimedOutLocked(dueByTicks) is { } start)
        {
            LeaveQueueLocked(start, new RunQueueTimeoutException(start.SessionId, _lanes.Names[start.Spec.Lane], TimeSpan.FromTicks(nowTicks - start.EnqueuedTicks)), nowTicks);
            AdmitWaitingLocked(nowTicks);
            any = true;
        }

        return any;
    }

    /// <summary>Fails every waiting start and ends every run, for the registry's disposal; nothing is admitted after.</summary>
    public List<Left> LeaveAllLocked(long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        _closed = true;
        foreach (PendingStart start in _queue.RemoveAllLocked())
        {
            start.Failure = new ObjectDisposedException(nameof(ActiveRunRegistry), "The registry was disposed while the start waited for admission.");
            start.LeftAtTicks = nowTicks;
            _settled.Add(start);
        }

        List<Left> left = new(_sessions.Count);
        foreach (RunEntry entry in _sessions)
        {
            left.Add(LeaveLocked(entry, EndTrigger.Disposed, nowTicks));
        }

        return left;
    }

    /// <summary>
    /// The cap a start in <paramref name="lane"/> would break, or <see langword="null"/> when there is room;
    /// <paramref name="replaced"/> is the run it would replace (its slots are the new run's to take).
    /// </summary>
    private int? FullLimitLocked(int lane, RunEntry? replaced)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (_maxActive > 0 && replaced is null && _sessions.Count >= _maxActive)
        {
            return _maxActive;
        }

        int cap = _lanes.Caps[lane];
        int active = _laneActive[lane] - (replaced is not null && replaced.Lane == lane ? 1 : 0);
        return active >= cap ? cap : null;
    }

    /// <summary>
    /// Admits waiting starts while their slots allow: per lane first in first out, and across lanes (for the global
    /// cap) the one that became ready first. Each admission is O(lanes): no scan of the waiters.
    /// </summary>
    private void AdmitWaitingLocked(long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        while (!_closed && _queue.ReadyCount > 0)
        {
            bool registryFull = _maxActive > 0 && _sessions.Count >= _maxActive;
            PendingStart? next = null;
            for (int lane = 0; lane < _laneActive.Length; lane++)
            {
                if (FirstStillReadyLocked(lane) is { } head && (next is null || head.ReadySequence < next.ReadySequence) && HasRoomLocked(head, lane, registryFull))
                {
                    next = head;
                }
            }

            if (next is null)
            {
                return;
            }

            RunEntry? current = _sessions.Find(next.SessionId, next.SessionHash);
            Debug.Assert(EntersWithSlotLocked(next, current), "A lane's head is still ready.");

            // The transition's clock reading may predate this start's own call (it was read before the gate): a run
            // never starts before it was asked for, so its deadline and its queue wait are never cut short.
            long admittedAt = Math.Max(nowTicks, next.EnqueuedTicks);
            RunEntry entry = next.CreateEntry(admittedAt, next.Owner.ToWallClockUtcTicksCached(admittedAt));
            entry.RunId = ++_lastRunId;
            _laneActive[entry.Lane]++;
            next.Admitted = entry;
            next.LeftAtTicks = admittedAt;

            // Out of the queue before a replaced run leaves: its leaving admits waiting starts in turn, this one not among them.
            _queue.RemoveLocked(next);
            if (current is null)
            {
                bool added = _sessions.TryAdd(entry, out _);
                Debug.Assert(added, "The session was free under the gate.");
                _deadlines.Add(entry);
                _settled.Add(next);
                if (entry.Background)
                {
                    // The session's next start, if a foreground one, would preempt this run: it waits only for a slot now.
                    _queue.SessionTurnedBackgroundLocked(entry.SessionId);
                }
            }
            else
            {
                // Settled before the replaced run leaves: a start its leaving admits in turn (which may replace this
                // start's run) is published after this one.
                _settled.Add(next);
                Left replaced = ReplaceLocked(current, entry, admittedAt);
                _settled.RecordReplaced(next, replaced);
            }
        }
    }

    /// <summary>
    /// The head of <paramref name="lane"/>'s ready queue once the heads that are no longer ready have gone back to
    /// waiting for their session: without this, such a head (its session taken meanwhile by a start that did not wait)
    /// would hold back the starts behind it whenever the registry is at its cap, since it never has room. Each start
    /// leaves the ready queue at most once per time it was made ready, so this is amortized O(1).
    /// </summary>
    private PendingStart? FirstStillReadyLocked(int lane)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        while (_queue.Lane(lane).First is { } head)
        {
            if (EntersWithSlotLocked(head, _sessions.Find(head.SessionId, head.SessionHash)))
            {
                return head;
            }

            _queue.UnreadyLocked(head);
        }

        return null;
    }

    /// <summary>
    /// Whether a ready start, given its slot, enters as a start entering now would: into a free session if it is the
    /// session's oldest start (or supersedes, which overtakes), in place of the session's run if it supersedes or
    /// preempts that run. Otherwise it waits for its session again: a start that did not wait took the session
    /// meanwhile, or the run it would have preempted left.
    /// </summary>
    private bool EntersWithSlotLocked(PendingStart start, RunEntry? current)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        return current is null
            ? start.Spec.WhenBusy == SessionBusyBehavior.Supersede || _queue.IsOldestLocked(start)
            : Replaces(start.Spec, current);
    }

    /// <summary>
    /// Whether the ready start heading <paramref name="lane"/>'s queue has the slots to enter now. At a cap (its lane's,
    /// or the registry's) only a start that takes its session's run's place can: it needs no global slot, and it takes
    /// the replaced run's lane slot when that run is in its lane. A head that cannot waits, and nothing behind it in its
    /// lane overtakes it.
    /// </summary>
    private bool HasRoomLocked(PendingStart head, int lane, bool registryFull)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool laneFull = _laneActive[lane] >= _lanes.Caps[lane];
        if (!laneFull && !registryFull)
        {
            return true;
        }

        return _sessions.Find(head.SessionId, head.SessionHash) is { } running && Replaces(head.Spec, running) && (!laneFull || running.Lane == lane);
    }

    /// <summary>
    /// Whether a start takes the place of <paramref name="current"/>: a foreground start replaces a background run
    /// whatever its <paramref name="whenBusy"/>, and a supersede replaces any run but a background start's a foreground
    /// one, since background work yields to a user's turn and never ends it.
    /// </summary>
    internal static bool Replaces(SessionBusyBehavior whenBusy, bool background, RunEntry current)
        => current.Background ? whenBusy == SessionBusyBehavior.Supersede || !background : whenBusy == SessionBusyBehavior.Supersede && !background;

    private static bool Replaces(in StartSpec spec, RunEntry current) => Replaces(spec.WhenBusy, spec.Background, current);

    /// <summary>
    /// Whether a foreground start that waits would preempt <paramref name="current"/> (a background run) ahead of a
    /// foreground start already waiting for the session, which preempts first: a start that waits never overtakes the
    /// session's waiting starts, even the one that waits only for its lane's slot.
    /// </summary>
    private bool OvertakesForegroundWaiterLocked(SessionBusyBehavior whenBusy, bool background, RunEntry current)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        return whenBusy == SessionBusyBehavior.Wait && !background && current.Background && _queue.HasForegroundWaiterLocked(current.SessionId);
    }

    /// <summary>
    /// Puts <paramref name="entry"/> in the place of its session's run, which leaves superseded (preempted when a
    /// foreground run replaces a background one) in the same step, so readers never see the session idle. The new run
    /// has taken its lane slot already, so the slot the old one frees cannot go to a waiter first.
    /// </summary>
    private Left ReplaceLocked(RunEntry current, RunEntry entry, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool preempt = current.Background && !entry.Background;

        // In the heap before the old run leaves: its leaving admits waiting starts, and one of them may replace this run.
        _deadlines.Add(entry);
        Left replaced = LeaveLocked(current, preempt ? EndTrigger.Preempted : EndTrigger.Superseded, nowTicks, replacement: entry);
        Debug.Assert(replaced.HasLeft, "The session's current run always leaves when replaced.");
        if (entry.Background && IsCurrent(entry))
        {
            _queue.SessionTurnedBackgroundLocked(entry.SessionId);
            AdmitWaitingLocked(nowTicks);
        }

        return replaced;
    }

    /// <summary>Takes a waiting start out with <paramref name="failure"/>; the next start of its session may then be ready.</summary>
    private void LeaveQueueLocked(PendingStart start, Exception failure, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool sessionQueueEmpty = _queue.RemoveLocked(start);
        RunEntry? running = _sessions.Find(start.SessionId, start.SessionHash);
        bool sessionFree = running is null;
        if (sessionFree && !sessionQueueEmpty)
        {
            _queue.SessionFreedLocked(start.SessionId);
        }
        else if (running is { Background: true } && !start.Spec.Background && !sessionQueueEmpty)
        {
            // The session's oldest foreground start leaves while a background run holds the session: the next one
            // would preempt that run now.
            _queue.SessionTurnedBackgroundLocked(start.SessionId);
        }

        start.Failure = failure;
        start.LeftAtTicks = nowTicks;
        start.LeftSessionIdle = sessionFree && sessionQueueEmpty;
        _settled.Add(start);
    }

    /// <summary>Checks that the structures agree; at every release of the gate in debug builds.</summary>
    [Conditional("DEBUG")]
    public void AssertInvariantsLocked()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        Debug.Assert(_sessions.Count == _deadlines.Count, "Every run in the table has exactly one watchdog instant.");
        Debug.Assert(_ledger.Count >= 0, "The ledger's count is never negative.");
        Debug.Assert(_laneActive.Sum() == _sessions.Count, "Every run holds exactly one lane slot.");
        Debug.Assert(_queue.ReadyCount <= _queue.Count, "A ready start is a waiting start.");
        Debug.Assert(_settled.IsEmpty, "Settled waiting starts are taken before the gate is released.");

        // The full scan is linear: only for small tables, which is what unit tests build. A check that holds changes
        // nothing a test can see, and release builds drop it, so mutation testing leaves it alone.
        // Stryker disable all : debug-only invariant check, unobservable when it holds
        if (_sessions.Count <= 64)
        {
            foreach (RunEntry entry in _sessions)
            {
                Debug.Assert(entry.Status < RunStatus.Ended && entry.QueueIndex >= 0, "A run in the table is live and queued.");
                Debug.Assert(entry.RunId <= _lastRunId, "Run ids come from the table.");
            }
        }

        // Stryker restore all
    }

    /// <summary>The gate held for one transition; see <see cref="EnterGate"/>.</summary>
    [SuppressMessage("Performance", "CA1815:Override equals and operator equals on value types", Justification = "A lock scope is never compared.")]
    public ref struct GateScope
    {
        private readonly RunTable _table;
        private Lock.Scope _scope;

        internal GateScope(RunTable table)
        {
            _table = table;
            _scope = table.Gate.EnterScope();
        }

        public void Dispose()
        {
            // Released even when a check fails (a test host turns a failed assertion into an exception): a failure
            // must surface as one, not as every other thread waiting for the gate for ever.
            try
            {
                _table.AssertInvariantsLocked();
            }
            finally
            {
                _scope.Dispose();
            }
        }
    }
}

/// <summary>What <see cref="RunTable.EnterLocked(RunEntry, SessionBusyBehavior, long)"/> did.</summary>
internal enum EnterOutcome
{
    /// <summary>The run entered.</summary>
    Entered,

    /// <summary>The session is busy (or has waiting starts a waiting start may not overtake).</summary>
    Busy,

    /// <summary>The run's lane or the registry is at its cap.</summary>
    Full,
}

/// <summary>What <see cref="RunTable.EnterLocked(RunEntry, SessionBusyBehavior, long)"/> did.</summary>
internal readonly struct EnterResult
{
    public EnterResult(EnterOutcome outcome, RunEntry? current, Left superseded, int limit)
    {
        Outcome = outcome;
        Current = current;
        Superseded = superseded;
        Limit = limit;
    }

    public EnterOutcome Outcome { get; }

    /// <summary>Gets a value indicating whether the new run entered.</summary>
    public bool Entered => Outcome == EnterOutcome.Entered;

    /// <summary>Gets the cap that refused the run, for <see cref="EnterOutcome.Full"/>.</summary>
    public int Limit { get; }

    /// <summary>Gets the session's run that refused the new one, when it did not enter.</summary>
    public RunEntry? Current { get; }

    /// <summary>Gets the run the new one replaced, if any.</summary>
    public Left Superseded { get; }
}

/// <summary>What <see cref="RunTable.LeaveLocked(RunEntry, EndTrigger, long, RunEntry?, string?)"/> did: the input to publishing.</summary>
internal readonly struct Left
{
    public Left(RunEntry entry, bool cancel, bool sessionIdle, AbandonedRunInfo? forgotten, bool quiet = false)
    {
        Quiet = quiet;
        Entry = entry;
        Cancel = cancel;
        SessionIdle = sessionIdle;
        Forgotten = forgotten;
    }

    /// <summary>Gets the run that left; <see langword="null"/> when nothing left (a stale caller).</summary>
    public RunEntry? Entry { get; }

    [MemberNotNullWhen(true, nameof(Entry))]
    public bool HasLeft => Entry is not null;

    /// <summary>Gets a value indicating whether the run's abort token must be cancelled (the registry ended it).</summary>
    public bool Cancel { get; }

    /// <summary>Gets a value indicating whether the session is now idle (not replaced, not a disposal).</summary>
    public bool SessionIdle { get; }

    /// <summary>Gets the ledger entry a full ledger forgot to make room for this run, if any.</summary>
    public AbandonedRunInfo? Forgotten { get; }

    /// <summary>
    /// Gets a value indicating whether the run's start was never published (a leased start that did not get its lease):
    /// it leaves without a trace in events, logs and metrics, as it never appeared in them.
    /// </summary>
    public bool Quiet { get; }
}
