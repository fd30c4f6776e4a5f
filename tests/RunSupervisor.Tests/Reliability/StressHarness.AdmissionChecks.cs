using System.Collections.Concurrent;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The stress harness's admission checks: what must hold whenever the registry is still (at a round's end, retried like
/// the rest of the model), and orders judged from facts that do not depend on when they are observed (run ids are
/// issued in the order runs enter, arrivals are numbered under the harness's arrival lock, and "seen before" stamps).
/// </summary>
internal sealed partial class StressHarness
{
    // Per session: the run id of the last start admitted from its queue (in arrival order), and the latest stamp at which
    // the caller cancelled an earlier start that was still waiting.
    private readonly long[] _lastAdmittedRun = new long[Sessions.Length];
    private readonly long[] _cancelFloor = new long[Sessions.Length];

    // Starts known to have waited only for a slot from their arrival (see StartAsyncOne), judged once they settle.
    private readonly List<Waiter> _readyAtArrival = [];
    private readonly ConcurrentQueue<Waiter> _admittedLog = new();
    private readonly List<Waiter> _admittedRecent = [];
    private readonly ConcurrentQueue<RunEndedEventArgs> _supersededEnds = new();
    private readonly HashSet<long> _preemptors = [];

    // Runs that took their session's run's place (a supersede, or a foreground start preempting a background run): such a
    // start does not queue behind its session's waiting starts, whether it entered at once or after waiting for a slot,
    // and needs no global slot. Kept for the whole run (the lane order is judged after the session order): a few bytes a
    // replacement.
    private readonly ConcurrentDictionary<long, byte> _replacers = new();

    /// <summary>
    /// The admission model while the registry is still; <see langword="null"/> when it holds. Retried with the rest of the
    /// model, so an outcome whose continuation has not run yet is not mistaken for a start that still waits.
    /// </summary>
    private string? CheckAdmissionModel(IReadOnlyList<RunInfo> active)
    {
        if (OverCap(active, out string? breach))
        {
            return breach;
        }

        if (!_admission)
        {
            return null;
        }

        long now = _registry.NowTicks();

        // A lane admits its ready starts first in, first out, in the order they became ready, which the model does not
        // track: a start that would take its session's run's place is judged only when nothing else waits in its lane.
        var waitingInLane = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (List<Waiter> list in _waiters)
        {
            foreach (Waiter w in list)
            {
                if (w.IsWaiting)
                {
                    waitingInLane[w.Lane ?? string.Empty] = waitingInLane.GetValueOrDefault(w.Lane ?? string.Empty) + 1;
                }
            }
        }

        var waitingPerLane = new Dictionary<string, int>(StringComparer.Ordinal);
        var oldestCallPerLane = new Dictionary<string, long>(StringComparer.Ordinal);
        for (int s = 0; s < Sessions.Length; s++)
        {
            string session = Sessions[s];
            Waiter? head = null;
            int waiting = 0;
            RunInfo? running = active.FirstOrDefault(r => r.SessionId == session);
            bool foregroundSeen = false;
            foreach (Waiter w in _waiters[s])
            {
                if (w.IsWaiting)
                {
                    // A start that would take its session's run's place waits only for a slot: with one free (or the slot of
                    // the run it replaces), the transition that freed it admitted it. That is any supersede, and the
                    // session's oldest waiting foreground start when a background run holds it (the later ones wait behind
                    // that one). A background start's supersede replaces a background run only.
                    bool replaces = (w.WhenBusy == SessionBusyBehavior.Supersede && !(w.Background && running is { Background: false }))
                        || (running is { Background: true } && !w.Background && !foregroundSeen);
                    foregroundSeen |= !w.Background;
                    if (replaces && waitingInLane[w.Lane ?? string.Empty] == 1 && HasRoom(active, w.Lane, replacing: running))
                    {
                        return $"start #{w.Sequence} on '{session}' ({w.WhenBusy}, {(w.Background ? "background" : "foreground")}) would take the place of {(running is null ? "no run" : $"{(running.Background ? "background" : "foreground")} run {running.RunId}")} and its lane {w.Lane ?? "default"} and the registry have room ({active.Count} active), yet it waits";
                    }

                    head ??= w;
                    waiting++;
                    string lane = w.Lane ?? string.Empty;
                    waitingPerLane[lane] = waitingPerLane.GetValueOrDefault(lane) + 1;
                    oldestCallPerLane[lane] = Math.Min(oldestCallPerLane.GetValueOrDefault(lane, long.MaxValue), w.CalledAtTicks);

                    // Cancelling the caller's token takes a waiting start out of the queue inside the call.
                    if (w.CancelStamp != 0)
                    {
                        return $"start #{w.Sequence} on '{session}' still waits although its caller cancelled it";
                    }

                    // Its timeout instant is at most ReturnedAtTicks + QueueTimeout; the fake clock fires the watchdog as it passes it.
                    if (_fake is not null && now > w.ReturnedAtTicks + w.QueueTimeout.Ticks + MaxClockStep.Ticks)
                    {
                        return $"start #{w.Sequence} on '{session}' still waits {TimeSpan.FromTicks(now - w.ReturnedAtTicks)} after its StartAsync returned, past its queue timeout {w.QueueTimeout} + one clock step";
                    }
                }
                else if (head is not null && w.IsAdmitted && !OutOfSessionOrder(w))
                {
                    return $"session FIFO: start #{w.Sequence} on '{session}' was admitted (run {w.RunId}) while the earlier start #{head.Sequence} still waits";
                }
                else if (head is not null && w.PushedOut)
                {
                    return $"start #{w.Sequence} on '{session}' was pushed out of its full queue as the oldest, but the older start #{head.Sequence} still waits";
                }
            }

            int queued = _registry.GetQueuedCount(session);
            if (queued != waiting)
            {
                return $"'{session}': {waiting} starts wait in the model but GetQueuedCount says {queued}";
            }

            // Admission is event-driven: the transition that frees the session or a slot admits the head in the same step.
            if (head is not null && !_registry.IsActive(session) && HasRoom(active, head.Lane))
            {
                return $"start #{head.Sequence} heads the queue of the idle session '{session}' and its lane {head.Lane ?? "default"} and the registry have room ({active.Count} active), yet it was not admitted";
            }
        }

        foreach (LaneQueueInfo info in _registry.GetQueueSnapshot())
        {
            string lane = info.Lane ?? string.Empty;
            int expected = waitingPerLane.GetValueOrDefault(lane);
            if (info.Waiting != expected)
            {
                return $"GetQueueSnapshot says {info.Waiting} starts wait in lane {info.Lane ?? "default"}, the model {expected}";
            }

            // A wall-clock reading is the monotonic one plus an offset read after it, so it is never early: the oldest
            // start was queued no earlier than its call began.
            if (_fake is not null && info.OldestQueuedAt is { } oldest && oldest.UtcTicks < _fake.Start.UtcTicks + oldestCallPerLane[lane])
            {
                return $"GetQueueSnapshot says the oldest start in lane {info.Lane ?? "default"} was queued at {oldest:O}, before any waiting start's call";
            }
        }

        return null;
    }

    private bool HasRoom(IReadOnlyList<RunInfo> active, string? lane, RunInfo? replacing = null)
        => (_options.MaxActiveRuns == 0 || active.Count < _options.MaxActiveRuns)
            && (lane is null || active.Count(r => r.Lane == lane && r.RunId != replacing?.RunId) < LaneCap(lane));

    /// <summary>
    /// Once the model is consistent at a round's end: judges the orders that only facts decide, then forgets what no
    /// later judgement needs.
    /// </summary>
    private void AfterConsistentRound()
    {
        if (!_admission)
        {
            return;
        }

        CheckSupersededEnds();
        CheckBusyRefusals();
        CheckOvertakers();
        AdvanceSessionQueues();
        CheckLaneOrder();
    }

    /// <summary>
    /// Session FIFO, from facts: walking each session's settled starts in arrival order, the admitted ones got increasing
    /// run ids, and none was seen admitted before an earlier start of its session, still waiting then, was cancelled.
    /// </summary>
    private void AdvanceSessionQueues()
    {
        for (int s = 0; s < Sessions.Length; s++)
        {
            List<Waiter> list = _waiters[s];
            int settled = 0;
            while (settled < list.Count && !list[settled].IsWaiting)
            {
                Waiter w = list[settled++];
                if (w.IsAdmitted && OutOfSessionOrder(w))
                {
                    Count(_replacers.ContainsKey(w.RunId) ? "admitted in place of a run" : "supersede admitted to a free session");
                }
                else if (w.IsAdmitted)
                {
                    if (w.RunId <= _lastAdmittedRun[s])
                    {
                        Violation($"session FIFO: start #{w.Sequence} on '{Sessions[s]}' was admitted as run {w.RunId}, before an earlier start admitted as run {_lastAdmittedRun[s]}");
                    }

                    if (w.SettledStamp < _cancelFloor[s])
                    {
                        Violation($"session FIFO: start #{w.Sequence} on '{Sessions[s]}' was seen admitted (run {w.RunId}) before an earlier start of the session, still waiting, was cancelled");
                    }

                    _lastAdmittedRun[s] = w.RunId;
                }
                else if (w.CallerCancelled)
                {
                    _cancelFloor[s] = Math.Max(_cancelFloor[s], w.CancelStamp);
                }
            }

            list.RemoveRange(0, settled);
        }
    }

    /// <summary>
    /// Lane FIFO, from facts. A start that arrived to an idle session with no queue, and was still queued after its call
    /// while the session was still idle, was ready for a slot by then (it headed an idle session's queue); every later
    /// start became ready after it. If such a start was admitted after a later start of its lane (of any lane, when it
    /// is in the uncapped default lane), and no run entered its session in between (which would make it wait for the
    /// session again), the later start overtook it.
    /// </summary>
    private void CheckLaneOrder()
    {
        while (_admittedLog.TryDequeue(out Waiter? admitted))
        {
            _admittedRecent.Add(admitted);
        }

        IReadOnlyList<RunInfo>? active = null;
        _readyAtArrival.RemoveAll(a =>
        {
            if (a.IsWaiting)
            {
                return false;
            }

            if (a.IsAdmitted)
            {
                foreach (Waiter b in _admittedRecent)
                {
                    // A start that replaced its session's run needed no global slot, so it may pass one of another lane
                    // that waits for a global slot; within a lane, the order holds for it too.
                    if (b.Sequence > a.Sequence && b.RunId < a.RunId && (b.Lane == a.Lane || (a.Lane is null && !_replacers.ContainsKey(b.RunId)))
                        && !MayHaveEntered(a.Session, a.ReadyRunFloor, b.RunId, active ??= _registry.GetActiveRuns()))
                    {
                        Violation($"lane FIFO: start #{b.Sequence} ('{b.Session}', lane {b.Lane ?? "default"}) was admitted as run {b.RunId} while the earlier start #{a.Sequence} ('{a.Session}', lane {a.Lane ?? "default"}), ready for a slot since its arrival, waited until run {a.RunId}");
                    }
                }

                Count("lane order judgements");
            }

            return true;
        });

        // Only starts that arrived after a start still to be judged can have overtaken it.
        long oldestOpen = _readyAtArrival.Count == 0 ? long.MaxValue : _readyAtArrival.Min(a => a.Sequence);
        _admittedRecent.RemoveAll(b => b.Sequence <= oldestOpen);
    }

    /// <summary>Whether a run may have entered <paramref name="session"/> with an id in (<paramref name="after"/>, <paramref name="before"/>); unknown sessions count.</summary>
    private bool MayHaveEntered(string session, long after, long before, IReadOnlyList<RunInfo> active)
    {
        for (long id = after + 1; id < before; id++)
        {
            string? of = _ended.TryGetValue(id, out RunEndedEventArgs? ended) ? ended.SessionId
                : _records.TryGetValue(id, out RunRecord? record) ? record.Handle.SessionId
                : active.FirstOrDefault(r => r.RunId == id)?.SessionId;
            if (of is null || of == session)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A superseded run's detail says whether it was preempted: exactly when it was a background run and its replacement a
    /// foreground one; and a foreground run is never replaced by a background one. Judged once every start of the round is
    /// recorded (the replacement may be recorded after the end).
    /// </summary>
    private void CheckSupersededEnds()
    {
        while (_supersededEnds.TryDequeue(out RunEndedEventArgs? e))
        {
            string detail = e.Detail ?? string.Empty;
            bool preempted = detail.StartsWith("preempted by run ", StringComparison.Ordinal);
            if (ReplacementNamedBy(e) is not long replacement || replacement <= e.RunId)
            {
                Violation($"run {e.RunId}: Superseded with detail '{detail}', which does not name a newer run");
                continue;
            }

            if (!_backgroundRuns.ContainsKey(e.RunId) && _backgroundRuns.ContainsKey(replacement))
            {
                Violation($"foreground run {e.RunId} was replaced by background run {replacement}: background work never ends a user's run");
            }

            bool expected = _backgroundRuns.ContainsKey(e.RunId) && !_backgroundRuns.ContainsKey(replacement);
            if (preempted != expected)
            {
                Violation($"run {e.RunId} ({(_backgroundRuns.ContainsKey(e.RunId) ? "background" : "foreground")}) replaced by run {replacement} ({(_backgroundRuns.ContainsKey(replacement) ? "background" : "foreground")}) ended with detail '{detail}'");
            }

            if (preempted)
            {
                _preemptors.Add(replacement);
                Count("preempted");
            }
        }
    }

    /// <summary>
    /// Whether a start admitted after waiting is outside its session's first-in-first-out order by design: a supersede
    /// (it waited only for a slot, and takes the session whatever waits there), or a start that preempted a background
    /// run. Only the others queue behind the session's earlier starts.
    /// </summary>
    private bool OutOfSessionOrder(Waiter w) => w.WhenBusy == SessionBusyBehavior.Supersede || _replacers.ContainsKey(w.RunId);

    /// <summary>The run a Superseded end's detail names as its replacement ("superseded by run N…", "preempted by run N: …").</summary>
    private static long? ReplacementNamedBy(RunEndedEventArgs e)
    {
        string detail = e.Detail ?? string.Empty;
        int from = detail.IndexOf("run ", StringComparison.Ordinal) + 4;
        if (from < 4)
        {
            return null;
        }

        int to = detail.IndexOf(':', from);
        return long.TryParse(detail.AsSpan(from, (to < 0 ? detail.Length : to) - from), out long replacement) ? replacement : null;
    }

    /// <summary>A waiting start admitted at once ahead of its session's waiting starts must have preempted a background run.</summary>
    private void CheckOvertakers()
    {
        while (_overtakers.TryDequeue(out long runId))
        {
            if (!_preemptors.Contains(runId))
            {
                Violation($"session FIFO: a waiting start entered at once as run {runId} while an earlier start of its session still waited");
            }
        }

        // A preemption's end is published inside the start that caused it, so every overtaker of the round has been judged.
        _preemptors.Clear();
    }

    /// <summary>A foreground start is never refused as busy by a background run: it preempts it (or waits for a slot).</summary>
    private void CheckBusyRefusals()
    {
        while (_busyForForeground.TryDequeue(out long runId))
        {
            if (_backgroundRuns.ContainsKey(runId))
            {
                Violation($"a foreground start was refused as busy by background run {runId} instead of preempting it");
            }
        }
    }

    /// <summary>At the end, after the final drain cancelled what still waited: every start has exactly one outcome, nothing is queued.</summary>
    private void FinishAdmission()
    {
        Task.WhenAll(_waiterCallbacks).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(static _ => { }, TaskScheduler.Default).Wait();
        if (_waiterCallbacks.FirstOrDefault(static t => !t.IsCompletedSuccessfully) is { } callback)
        {
            throw new InvalidOperationException($"A waiting start's outcome was not observed within 30 s of the final drain: {callback.Status} {callback.Exception?.InnerException}");
        }

        foreach (List<Waiter> list in _waiters)
        {
            if (list.FirstOrDefault(static w => w.IsWaiting) is { } lost)
            {
                throw new InvalidOperationException($"start #{lost.Sequence} on '{lost.Session}' still waits after the final drain cancelled every waiting start");
            }
        }

        foreach (string session in Sessions)
        {
            if (_registry.GetQueuedCount(session) != 0)
            {
                throw new InvalidOperationException($"'{session}' still has {_registry.GetQueuedCount(session)} queued starts after the final drain");
            }
        }

        if (_registry.GetQueueSnapshot().FirstOrDefault(static l => l.Waiting != 0) is { } lane)
        {
            throw new InvalidOperationException($"lane {lane.Lane ?? "default"} still has {lane.Waiting} waiting starts after the final drain");
        }

        // Every start a drain reported cancelled was seen failing so, and no other.
        long reported = Interlocked.Read(ref _drainCancelledReported);
        long observed = _counters.GetValueOrDefault("cancelled by a drain");
        if (reported != observed)
        {
            throw new InvalidOperationException($"drains reported {reported} cancelled starts, but {observed} starts failed with a drain's cancellation");
        }

        AfterConsistentRound();

        // A waiting start that leaves its session idle owes the heartbeats dropped meanwhile, like a run's end: only a start that failed can.
        foreach ((string session, long owed) in _owedFromQueue)
        {
            long failed = _failedStarts.GetValueOrDefault(session);
            if (owed > failed)
            {
                throw new InvalidOperationException($"HeartbeatOwed was raised {owed} times for '{session}' outside a run's end, but only {failed} of its starts failed");
            }
        }
    }
}
