using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// This host's leased starts that wait (<see cref="SessionBusyBehavior.Wait"/>) for a session another host runs, first
/// in first out per session. A start joins once the store has told it another host holds the session (or when it
/// arrives while others already wait so), and only the oldest of a session's starts tries again; the others wait for
/// their turn, so two starts of this host never race each other for another host's release, and a start that came
/// later never takes the session ahead of an older one. Waiting behind this host's own runs is the local queue's
/// business, not this list's. Thread-safe: one lock, held for a few instructions, never while calling out.
/// </summary>
internal sealed class RemoteWaitList
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedList<RemoteWaiter>> _sessions = new(StringComparer.Ordinal);
    private Exception? _closed;

    /// <summary>
    /// Puts a start at the end of its session's list, if the session's waiting starts (<paramref name="localQueued"/> in
    /// the local queue, and those here between tries) leave room under <paramref name="limit"/>; with
    /// <paramref name="pushOutOldest"/> a full list fails its oldest start between tries to make room.
    /// </summary>
    /// <returns>The start's place, or <see langword="null"/> when there is no room for it.</returns>
    public RemoteWaiter? Join(string sessionId, int localQueued, int limit, bool pushOutOldest, Func<RemoteWaiter, Exception> pushedOut)
    {
        lock (_lock)
        {
            if (_closed is not null)
            {
                throw _closed;
            }

            if (!_sessions.TryGetValue(sessionId, out LinkedList<RemoteWaiter>? existing) || existing.Count == 0)
            {
                // Nobody here waits for another host's release of the session: the start tries at once.
                return new RemoteWaiter(sessionId);
            }

            if (!_sessions.TryGetValue(sessionId, out LinkedList<RemoteWaiter>? list))
            {
                list = new LinkedList<RemoteWaiter>();
                _sessions[sessionId] = list;
            }

            if (localQueued + WaitingLocked(list) >= limit)
            {
                RemoteWaiter? oldest = pushOutOldest ? list.FirstOrDefault(static w => !w.InAttempt) : null;
                if (oldest is null && pushOutOldest && localQueued > 0)
                {
                    // Every start in line is trying, and the session's oldest waiting start is in the local queue: the
                    // new start goes there, and that queue pushes its oldest out to make room, as without a store.
                    RemoveIfEmptyLocked(sessionId, list);
                    return new RemoteWaiter(sessionId);
                }

                if (oldest is null)
                {
                    RemoveIfEmptyLocked(sessionId, list);
                    return null;
                }

                FailLocked(oldest, pushedOut(oldest));
            }

            var waiter = new RemoteWaiter(sessionId);
            waiter.Node = list.AddLast(waiter);
            return waiter;
        }
    }

    /// <summary>
    /// Puts a start that holds its session here and is about to ask the store at the end of its session's list, if it
    /// is not in it yet, trying: should the store say another host holds the session, it waits in this list. After the
    /// registry's disposal it stays out of every list (its try fails on the disposal anyway). A start not in the list
    /// that finds older starts of its session waiting in it (one admitted here after an older one was refused by the
    /// store and withdrew) does not try: it waits behind them.
    /// </summary>
    /// <returns><see langword="true"/> if the start may ask the store now (or has failed, which the caller looks at).</returns>
    public bool JoinTrying(RemoteWaiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node is not null || _closed is not null || waiter.Failure is not null)
            {
                waiter.InAttempt = true;
                return true;
            }

            if (!_sessions.TryGetValue(waiter.SessionId, out LinkedList<RemoteWaiter>? list))
            {
                list = new LinkedList<RemoteWaiter>();
                _sessions[waiter.SessionId] = list;
            }

            bool first = list.Count == 0;
            waiter.InAttempt = first;
            waiter.Node = list.AddLast(waiter);
            return first;
        }
    }

    /// <summary>The start's try found the session held by another host: it waits in its list again.</summary>
    public void EndTry(RemoteWaiter waiter)
    {
        lock (_lock)
        {
            waiter.HeardHeld = true;
            waiter.InAttempt = false;
        }
    }

    /// <summary>Takes a start out of its list (it has the session, or gave up); the next one's turn comes at once.</summary>
    public void Leave(RemoteWaiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node is { } node)
            {
                LinkedList<RemoteWaiter> list = node.List!;
                bool wasHead = ReferenceEquals(list.First, node);
                list.Remove(node);
                waiter.Node = null;
                if (wasHead && list.First is { } next)
                {
                    next.Value.WakeLocked();
                }

                RemoveIfEmptyLocked(waiter.SessionId, list);
            }
        }
    }

    /// <summary>
    /// Readies the start for its next wait and says whether it may try now: it is the oldest of its session. A wake that
    /// comes after this call ends the wait; one that came before it is seen by the try that follows.
    /// </summary>
    /// <returns><see langword="true"/> if it is its session's oldest start.</returns>
    /// <exception cref="Exception">Its failure, when the list failed it (a drain, the registry's disposal, pushed out).</exception>
    public bool Arm(RemoteWaiter waiter, out Task wake)
    {
        lock (_lock)
        {
            if (waiter.Failure is { } failure)
            {
                throw failure;
            }

            waiter.ArmLocked();
            wake = waiter.Wake;
            if (waiter.Node is null || ReferenceEquals(waiter.Node.List!.First, waiter.Node))
            {
                waiter.InAttempt = true;
                return true;
            }

            return false;
        }
    }

    /// <summary>
    /// Readies the signal of the wait that follows a try, before the try asks the store: a release announced between the
    /// store's answer and the wait still ends it. Never throws: a failure that came meanwhile is seen at the next turn.
    /// </summary>
    /// <returns>The signal.</returns>
    public Task ArmForTry(RemoteWaiter waiter)
    {
        lock (_lock)
        {
            // A failure that came meanwhile has woken the current signal: keep it, or the wake would be lost.
            if (waiter.Failure is null)
            {
                waiter.ArmLocked();
            }

            return waiter.Wake;
        }
    }

    /// <summary>Wakes the oldest start of the session: its release message arrived.</summary>
    public void WakeHead(string sessionId)
    {
        lock (_lock)
        {
            if (_sessions.TryGetValue(sessionId, out LinkedList<RemoteWaiter>? list) && list.First is { } head)
            {
                head.Value.WakeLocked();
            }
        }
    }

    /// <summary>Wakes the oldest start of every session: messages may have been lost (a reconnect).</summary>
    public void WakeAllHeads()
    {
        lock (_lock)
        {
            foreach (LinkedList<RemoteWaiter> list in _sessions.Values)
            {
                list.First?.Value.WakeLocked();
            }
        }
    }

    /// <summary>Gets how many starts wait for the session between tries (a start trying is counted where it waits then: the local queue, or nowhere).</summary>
    public int CountWaiting(string sessionId)
    {
        lock (_lock)
        {
            return _sessions.TryGetValue(sessionId, out LinkedList<RemoteWaiter>? list) ? WaitingLocked(list) : 0;
        }
    }

    /// <summary>Gets a value indicating whether a start here waits for the session after the store said another host holds it.</summary>
    public bool HasHeardHeld(string sessionId)
    {
        lock (_lock)
        {
            return _sessions.TryGetValue(sessionId, out LinkedList<RemoteWaiter>? list) && list.Any(static w => w.HeardHeld);
        }
    }

    /// <summary>Fails every start here (a drain that cancels waiting, the registry's disposal), oldest first per session.</summary>
    /// <param name="failure">Each start's exception.</param>
    /// <param name="close">A failure for every later <see cref="Join"/>, for the registry's disposal; <see langword="null"/> to stay open.</param>
    /// <returns>The sessions of the starts failed between tries, one entry per start; a start trying fails once its try is refused.</returns>
    public List<string> FailAll(Func<RemoteWaiter, Exception> failure, Exception? close = null)
    {
        List<string> failed = [];
        lock (_lock)
        {
            _closed ??= close;
            foreach (LinkedList<RemoteWaiter> list in _sessions.Values)
            {
                foreach (RemoteWaiter waiter in list.ToArray())
                {
                    if (!waiter.InAttempt)
                    {
                        failed.Add(waiter.SessionId);
                    }

                    FailLocked(waiter, failure(waiter));
                }
            }

            _sessions.Clear();
        }

        return failed;
    }

    private static int WaitingLocked(LinkedList<RemoteWaiter> list)
    {
        int count = 0;
        foreach (RemoteWaiter waiter in list)
        {
            count += waiter.InAttempt ? 0 : 1;
        }

        return count;
    }

    private void FailLocked(RemoteWaiter waiter, Exception failure)
    {
        Debug.Assert(_lock.IsHeldByCurrentThread, "Under the list's lock.");
        LinkedList<RemoteWaiter> list = waiter.Node!.List!;
        bool wasHead = ReferenceEquals(list.First, waiter.Node);
        list.Remove(waiter.Node!);
        waiter.Node = null;
        waiter.Failure = failure;
        waiter.WakeLocked();
        if (wasHead && list.First is { } next)
        {
            next.Value.WakeLocked();
        }
    }

    private void RemoveIfEmptyLocked(string sessionId, LinkedList<RemoteWaiter> list)
    {
        Debug.Assert(_lock.IsHeldByCurrentThread, "Under the list's lock.");
        if (list.Count == 0)
        {
            _sessions.Remove(sessionId);
        }
    }
}
