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
/// policy's lock are never taken while it is held, and it is never taken while they are held.</para>
/// <para>Queries (<see cref="Find(string, int)"/>, <see cref="Count"/>, <see cref="AbandonedCount"/>, enumeration) take
/// no lock.</para>
/// </remarks>
internal sealed class RunTable
{
    private readonly SessionTable _sessions;
    private readonly DeadlineQueue _deadlines;
    private readonly AbandonedRunLedger _ledger;
    private long _lastRunId;

    public RunTable(int maxAbandonedRuns)
    {
        _sessions = new SessionTable(Gate);
        _deadlines = new DeadlineQueue(Gate);
        _ledger = new AbandonedRunLedger(maxAbandonedRuns, Gate);
    }

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
            return _deadlines.MinDueTicks;
        }
    }

    public RunEntry? Find(string sessionId) => _sessions.Find(sessionId);

    public RunEntry? Find(string sessionId, int hash) => _sessions.Find(sessionId, hash);

    /// <summary>Gets a value indicating whether <paramref name="entry"/> is its session's entry; lock-free.</summary>
    public bool IsCurrent(RunEntry entry) => ReferenceEquals(_sessions.Find(entry.SessionId, entry.SessionHash), entry);

    public SessionTable.Enumerator GetEnumerator() => _sessions.GetEnumerator();

    /// <summary>Takes the gate; disposing the scope checks the invariants (debug builds) and releases it.</summary>
    /// <returns>The scope.</returns>
    public GateScope EnterGate() => new(this);

    /// <summary>
    /// Puts <paramref name="entry"/> in the table with the next run id. When the session has a run, either refuses
    /// (handing the id back) or, with <paramref name="supersede"/>, replaces it in place: the old run leaves
    /// <see cref="RunEndReason.Superseded"/> in the same step, so readers never see the session idle.
    /// </summary>
    public EnterResult EnterLocked(RunEntry entry, bool supersede, long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");

        // Ids increase in the order runs enter the table, so a session's newer run always has the larger id. Assigned
        // before the entry is published (lock-free readers may see it at once) and handed back on refusal.
        entry.RunId = ++_lastRunId;
        if (_sessions.TryAdd(entry, out RunEntry? current))
        {
            _deadlines.Add(entry);
            return new EnterResult(entered: true, current: null, superseded: default);
        }

        if (!supersede)
        {
            _lastRunId--;
            return new EnterResult(entered: false, current, superseded: default);
        }

        Left superseded = LeaveLocked(current, EndTrigger.Superseded, nowTicks, replacement: entry);
        Debug.Assert(superseded.HasLeft, "The session's current run always leaves when superseded.");
        _deadlines.Add(entry);
        return new EnterResult(entered: true, current: null, superseded);
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

        entry.SetAborting(cause, detail);
        if (cause != AbortCause.Deadline)
        {
            // An explicit abort gives the run one grace period from now, but never pushes eviction back.
            entry.EvictAtTicks = Math.Min(entry.EvictAtTicks, nowTicks + entry.GraceTicks);
        }

        _deadlines.Update(entry);
        return true;
    }

    /// <summary>Moves a running, current run's deadline later, never past <paramref name="maxDeadlineTicks"/>.</summary>
    /// <returns><see langword="true"/> if the deadline moved.</returns>
    public bool ExtendLocked(RunEntry entry, long extensionTicks, long maxDeadlineTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        if (entry.Status != RunStatus.Running || !IsCurrent(entry))
        {
            return false;
        }

        long deadline = entry.DeadlineTicks;
        if (extensionTicks > maxDeadlineTicks - deadline)
        {
            return false;
        }

        // Only ever later: the pending wake-up may now be early, and an early tick just re-arms.
        entry.DeadlineTicks = deadline + extensionTicks;
        entry.EvictAtTicks = entry.DeadlineTicks + entry.GraceTicks;
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
    public Left LeaveLocked(RunEntry entry, EndTrigger trigger, long nowTicks, RunEntry? replacement = null)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        bool removed = replacement is null ? _sessions.TryRemove(entry) : _sessions.TryReplace(entry, replacement);
        if (!removed)
        {
            return default;
        }

        _deadlines.Remove(entry);
        RunEndReason reason = RunEnds.Decide(entry, trigger);
        long replacementRunId = replacement?.RunId ?? 0;
        entry.MarkEnded(reason, RunEnds.Describe(entry, reason, trigger, replacementRunId), nowTicks);
        AbandonedRunInfo? forgotten = null;
        bool providerPending = entry.ProviderTask is { IsCompleted: false } || (entry.ProviderTask is null && !entry.Released);
        if (providerPending && reason is RunEndReason.ForceEvicted or RunEndReason.Superseded)
        {
            forgotten = _ledger.Add(new AbandonedRunInfo(entry.SessionId, entry.RunId, entry.StartedAt, entry.ToWallClock(nowTicks)));
            entry.Abandoned = true;
        }

        bool cancel = trigger is EndTrigger.Evicted or EndTrigger.Superseded or EndTrigger.Disposed;
        bool sessionIdle = replacement is null && trigger != EndTrigger.Disposed;
        return new Left(entry, cancel, sessionIdle, forgotten);
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
    /// Takes every due instant up to <paramref name="nowTicks"/>: a running run at its deadline begins aborting (and, if
    /// the tick is late, the same pass may reach its fixed eviction instant too); an aborting run at its eviction
    /// instant leaves.
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
            long due = entry.DueTicks;
            if (entry.Status == RunStatus.Running)
            {
                BeginAbortLocked(entry, AbortCause.Deadline, detail: null, nowTicks);
                (timedOut ??= []).Add((entry, due));
                continue;
            }

            Left left = LeaveLocked(entry, EndTrigger.Evicted, nowTicks);
            Debug.Assert(left.HasLeft, "Every queued entry is in the table.");
            (evicted ??= []).Add((left, due));
        }
    }

    /// <summary>Ends every run, for the registry's disposal.</summary>
    public List<Left> LeaveAllLocked(long nowTicks)
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        List<Left> left = new(_sessions.Count);
        foreach (RunEntry entry in _sessions)
        {
            left.Add(LeaveLocked(entry, EndTrigger.Disposed, nowTicks));
        }

        return left;
    }

    /// <summary>Checks that the structures agree; at every release of the gate in debug builds.</summary>
    [Conditional("DEBUG")]
    public void AssertInvariantsLocked()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "Under the gate.");
        Debug.Assert(_sessions.Count == _deadlines.Count, "Every run in the table has exactly one watchdog instant.");
        Debug.Assert(_ledger.Count >= 0, "The ledger's count is never negative.");

        // The full scan is linear: only for small tables, which is what unit tests build.
        if (_sessions.Count <= 64)
        {
            foreach (RunEntry entry in _sessions)
            {
                Debug.Assert(entry.Status < RunStatus.Ended && entry.QueueIndex >= 0, "A run in the table is live and queued.");
                Debug.Assert(entry.RunId <= _lastRunId, "Run ids come from the table.");
            }
        }
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
            _table.AssertInvariantsLocked();
            _scope.Dispose();
        }
    }
}

/// <summary>What <see cref="RunTable.EnterLocked(RunEntry, bool, long)"/> did.</summary>
internal readonly struct EnterResult
{
    public EnterResult(bool entered, RunEntry? current, Left superseded)
    {
        Entered = entered;
        Current = current;
        Superseded = superseded;
    }

    /// <summary>Gets a value indicating whether the new run entered.</summary>
    public bool Entered { get; }

    /// <summary>Gets the session's run that refused the new one, when it did not enter.</summary>
    public RunEntry? Current { get; }

    /// <summary>Gets the run the new one replaced, if any.</summary>
    public Left Superseded { get; }
}

/// <summary>What <see cref="RunTable.LeaveLocked(RunEntry, EndTrigger, long, RunEntry?)"/> did: the input to publishing.</summary>
internal readonly struct Left
{
    public Left(RunEntry entry, bool cancel, bool sessionIdle, AbandonedRunInfo? forgotten)
    {
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
}
