using System.Collections.Concurrent;
using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// The starts waiting for admission: one first-in-first-out queue per session and, for the starts that wait only for a
/// slot (the head of a free session's queue, or a start that would take the place of its session's run), one per lane. Written only under the run table's gate; <see cref="CountFor(string)"/> reads
/// lock-free. Queue timeouts sit in a heap with lazy removal: a start that leaves early is skipped when its instant
/// comes up, or dropped when the heap is rebuilt once such starts outnumber the waiting ones, so leaving costs O(1)
/// amortized and the heap never holds more than about twice the waiting starts. A session's queue stays in the map once
/// it empties, so a session whose starts queue again and again (a busy session's hand-offs) allocates no queue for
/// each; empty queues are swept out once they outnumber the others (and a small floor), at amortized constant cost.
/// </summary>
internal sealed class AdmissionQueue
{
    // Below this many stale timeout entries the heap is not worth rebuilding.
    private const int MinStaleBeforeCompaction = 32;

    // Below this many empty session queues they are not worth sweeping out.
    private const int MinEmptyBeforeSweep = 64;

    private readonly Lock _gate;
    private readonly ConcurrentDictionary<string, WaitList> _sessions = new(StringComparer.Ordinal);
    private readonly WaitList[] _lanes;
    private readonly PriorityQueue<PendingStart, long> _timeouts = new();
    private long _readySequence;
    private long _enqueueSequence;
    private int _emptySessionQueues;

    // Counted rather than derived from the map: ConcurrentDictionary.Count takes every lock of the map.
    private int _waitingSessions;

    public AdmissionQueue(Lock gate, int laneCount)
    {
        _gate = gate;
        _lanes = new WaitList[laneCount];
        for (int i = 0; i < laneCount; i++)
        {
            _lanes[i] = new WaitList(lane: true);
        }
    }

    /// <summary>Gets the number of waiting starts; under the gate.</summary>
    public int Count { get; private set; }

    /// <summary>Gets the number of starts waiting only for a lane or global slot; under the gate.</summary>
    public int ReadyCount { get; private set; }

    /// <summary>Gets the number of starts waiting for <paramref name="sessionId"/>; lock-free.</summary>
    public int CountFor(string sessionId) => _sessions.TryGetValue(sessionId, out WaitList? queue) ? queue.Count : 0;

    public bool HasWaitersLocked(string sessionId)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        return Count > 0 && _sessions.TryGetValue(sessionId, out WaitList? queue) && queue.Count > 0;
    }

    /// <summary>
    /// Gets a value indicating whether a foreground start waits for <paramref name="sessionId"/>; under the gate. Asked
    /// only when a foreground start would preempt the session's background run while starts wait for the session.
    /// </summary>
    public bool HasForegroundWaiterLocked(string sessionId) => OldestForegroundLocked(sessionId) is not null;

    /// <summary>Gets the oldest waiting start of <paramref name="sessionId"/>; under the gate.</summary>
    public PendingStart? OldestLocked(string sessionId)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        return _sessions.TryGetValue(sessionId, out WaitList? queue) ? queue.First : null;
    }

    /// <summary>Gets the ready queue of a lane; under the gate.</summary>
    public WaitList Lane(int lane)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        return _lanes[lane];
    }

    /// <summary>
    /// Puts <paramref name="start"/> at the end of its session's queue; ready at once if it heads a free session's queue,
    /// or if it would replace whatever runs on its session (<paramref name="readyAnyway"/>: a supersede, or a foreground
    /// start on a session a background run holds), so that it waits only for its slot.
    /// </summary>
    public void EnqueueLocked(PendingStart start, bool sessionFree, bool readyAnyway)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        if (!_sessions.TryGetValue(start.SessionId, out WaitList? queue))
        {
            queue = new WaitList(lane: false);
            _sessions[start.SessionId] = queue;
            _waitingSessions++;
        }
        else if (queue.Count == 0)
        {
            _emptySessionQueues--;
            _waitingSessions++;
        }

        queue.AddLast(start);
        start.EnqueueSequence = ++_enqueueSequence;
        Count++;
        _timeouts.Enqueue(start, start.TimeoutAtTicks);
        if (readyAnyway || (sessionFree && queue.Count == 1))
        {
            MakeReadyLocked(start);
        }
    }

    /// <summary>
    /// A background run has just become the session's run: the session's oldest foreground start would preempt it, as a
    /// foreground start arriving now would, so it now waits only for a slot. O(the session's queue), bounded by
    /// <see cref="RunSupervisorOptions.MaxQueuedPerSession"/>, and only when a background run takes a session others wait for.
    /// </summary>
    public void SessionTurnedBackgroundLocked(string sessionId)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        if (OldestForegroundLocked(sessionId) is { IsReady: false } start)
        {
            MakeReadyLocked(start);
        }
    }

    /// <summary>
    /// Gets the session's oldest waiting foreground start; under the gate. O(the session's queue), bounded by
    /// <see cref="RunSupervisorOptions.MaxQueuedPerSession"/>.
    /// </summary>
    private PendingStart? OldestForegroundLocked(string sessionId)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        if (Count == 0 || !_sessions.TryGetValue(sessionId, out WaitList? queue))
        {
            return null;
        }

        foreach (PendingStart start in queue)
        {
            if (!start.Spec.Background)
            {
                return start;
            }
        }

        return null;
    }

    /// <summary>The session has just become free: its oldest start, if any, now waits only for a slot.</summary>
    public void SessionFreedLocked(string sessionId)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        if (Count > 0 && _sessions.TryGetValue(sessionId, out WaitList? queue) && queue.First is { IsReady: false } oldest)
        {
            MakeReadyLocked(oldest);
        }
    }

    /// <summary>Gets a value indicating whether <paramref name="start"/> is the oldest start of its session; under the gate.</summary>
    public bool IsOldestLocked(PendingStart start)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        Debug.Assert(start.IsQueued, "Only a waiting start has a place in its session's queue.");
        return ReferenceEquals(start.SessionLinks.List!.First, start);
    }

    /// <summary>A ready start found its session taken by a start that did not wait: it waits for the session again.</summary>
    public void UnreadyLocked(PendingStart start)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        _lanes[start.Spec.Lane].Remove(start);
        ReadyCount--;
    }

    /// <summary>Takes <paramref name="start"/> out of every queue.</summary>
    /// <returns><see langword="true"/> if its session has no waiting start left.</returns>
    public bool RemoveLocked(PendingStart start)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        Debug.Assert(start.IsQueued, "Only a waiting start leaves the queue.");
        if (start.IsReady)
        {
            UnreadyLocked(start);
        }

        WaitList queue = start.SessionLinks.List!;
        queue.Remove(start);
        Count--;
        CompactTimeoutsIfStaleLocked();
        if (queue.Count == 0)
        {
            _waitingSessions--;
            _emptySessionQueues++;
            SweepEmptySessionQueuesIfManyLocked();
            return true;
        }

        return false;
    }

    /// <summary>Gets the earliest queue timeout of a start still waiting, dropping those that left; under the gate.</summary>
    public long NextTimeoutTicksLocked()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        while (_timeouts.TryPeek(out PendingStart? start, out long at))
        {
            if (start.IsQueued)
            {
                return at;
            }

            _timeouts.Dequeue();
        }

        return long.MaxValue;
    }

    /// <summary>Takes the next start whose queue timeout is due, if any; under the gate.</summary>
    public PendingStart? TakeTimedOutLocked(long nowTicks)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        return NextTimeoutTicksLocked() <= nowTicks ? _timeouts.Dequeue() : null;
    }

    /// <summary>Lists every waiting start, oldest first; under the gate.</summary>
    public List<PendingStart> SnapshotLocked()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        List<PendingStart> all = new(Count);
        foreach (WaitList queue in _sessions.Values)
        {
            all.AddRange(queue);
        }

        all.Sort(static (a, b) => a.EnqueueSequence.CompareTo(b.EnqueueSequence));
        return all;
    }

    /// <summary>Takes every waiting start out, for the registry's disposal.</summary>
    public List<PendingStart> RemoveAllLocked()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        List<PendingStart> all = [];
        foreach (WaitList queue in _sessions.Values)
        {
            all.AddRange(queue);
        }

        foreach (PendingStart start in all)
        {
            RemoveLocked(start);
        }

        _timeouts.Clear();
        return all;
    }

    /// <summary>Gets how many entries the timeout heap holds, waiting starts and stale ones together; for tests.</summary>
    internal int TimeoutHeapCount => _timeouts.Count;

    /// <summary>Gets how many session queues the map holds, empty ones included; for tests.</summary>
    internal int SessionQueueCount => _sessions.Count;

    /// <summary>
    /// Drops the empty session queues once they outnumber the sessions with waiting starts (and a small floor): each
    /// was kept for its session's next start, and a sweep visits every queue, so sweeping only then costs amortized
    /// constant time per start that emptied a queue and keeps the map within about twice the waiting sessions.
    /// </summary>
    private void SweepEmptySessionQueuesIfManyLocked()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        if (_emptySessionQueues <= Math.Max(_waitingSessions, MinEmptyBeforeSweep))
        {
            return;
        }

        foreach (KeyValuePair<string, WaitList> session in _sessions)
        {
            if (session.Value.Count == 0)
            {
                _sessions.TryRemove(session);
            }
        }

        _emptySessionQueues = 0;
    }

    /// <summary>
    /// Rebuilds the timeout heap without the starts that already left the queue once they outnumber the waiting ones.
    /// A start that leaves stays in the heap until its timeout reaches the top (removing it there would cost a search),
    /// and each one keeps its run alive: without this, a busy registry would hold every start of the last queue
    /// timeout (two minutes by default) in memory. Rebuilding when the stale entries reach the live count (and a small
    /// floor) keeps the heap within twice the waiting starts at amortized constant cost per start.
    /// </summary>
    private void CompactTimeoutsIfStaleLocked()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        int stale = _timeouts.Count - Count;
        if (stale <= Math.Max(Count, MinStaleBeforeCompaction))
        {
            return;
        }

        var live = new List<(PendingStart, long)>(Count);
        foreach ((PendingStart start, long at) in _timeouts.UnorderedItems)
        {
            if (start.IsQueued)
            {
                live.Add((start, at));
            }
        }

        _timeouts.Clear();
        _timeouts.EnqueueRange(live);
    }

    private void MakeReadyLocked(PendingStart start)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Under the gate.");
        start.ReadySequence = ++_readySequence;
        _lanes[start.Spec.Lane].AddLast(start);
        ReadyCount++;
    }
}
