using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// A start waiting for admission: in its session's queue (first in, first out) and, while it waits only for a slot (it
/// heads that queue while the session is free, or it would take the place of the session's run), in its lane's queue too. The admission that frees what it waits for makes its run under the
/// gate; the caller's task completes after the gate is released, never on the releasing thread's stack
/// (continuations run asynchronously).
/// </summary>
internal sealed class PendingStart : TaskCompletionSource<RunHandle>
{
    public PendingStart(ActiveRunRegistry owner, string sessionId, int sessionHash, in StartSpec spec, IRunEndObserver? observer, long enqueuedTicks, Activity? traceParent)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        Owner = owner;
        SessionId = sessionId;
        SessionHash = sessionHash;
        Spec = spec;
        Observer = observer;
        EnqueuedTicks = enqueuedTicks;
        TraceParent = traceParent;
    }

    public ActiveRunRegistry Owner { get; }

    public string SessionId { get; }

    public int SessionHash { get; }

    public StartSpec Spec { get; }

    public IRunEndObserver? Observer { get; }

    public long EnqueuedTicks { get; }

    /// <summary>Gets or sets the start's place in the order of all starts ever queued; set under the gate as it is queued.</summary>
    public long EnqueueSequence { get; set; }

    /// <summary>Gets the instant the start gives up waiting: computed, not stored, since every waiting start carries it.</summary>
    public long TimeoutAtTicks => EnqueuedTicks + Spec.QueueTimeoutTicks;

    /// <summary>
    /// Gets the caller's activity when the start queued, if anyone listened for the registry's: the run's activity, made
    /// at admission on whichever thread freed the slot, is that caller's child, not the releasing thread's.
    /// </summary>
    public Activity? TraceParent { get; }

    /// <summary>Gets or sets the registration on the caller's token; set once, outside the gate.</summary>
    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>The start's place in its session's queue; under the gate. A field, so a <see cref="WaitList"/> links it in place.</summary>
    internal WaitList.Links SessionLinks;

    /// <summary>The start's place in its lane's queue, while it waits only for a slot; under the gate.</summary>
    internal WaitList.Links LaneLinks;

    /// <summary>Gets or sets the order in which starts became ready, across lanes: the global cap admits the oldest first; under the gate.</summary>
    public long ReadySequence { get; set; }

    /// <summary>Gets a value indicating whether the start still waits; under the gate.</summary>
    public bool IsQueued => SessionLinks.List is not null;

    /// <summary>Gets a value indicating whether the start waits only for a lane or global slot; under the gate.</summary>
    public bool IsReady => LaneLinks.List is not null;

    /// <summary>Gets or sets the run the start was admitted as; under the gate, once.</summary>
    public RunEntry? Admitted { get; set; }

    /// <summary>Gets or sets why the start gave up; under the gate, once.</summary>
    public Exception? Failure { get; set; }

    /// <summary>Gets or sets the instant the start left the queue, admitted or not; under the gate.</summary>
    public long LeftAtTicks { get; set; }

    /// <summary>Gets or sets a value indicating whether leaving made its session idle (no run, nothing queued); under the gate.</summary>
    public bool LeftSessionIdle { get; set; }

    /// <summary>Makes the admitted run; under the gate, so the run's own deadline starts at admission.</summary>
    public RunEntry CreateEntry(long nowTicks, long nowUtcTicks) => Owner.NewEntry(SessionId, SessionHash, nowTicks, nowUtcTicks, Spec, Observer);

    /// <summary>Completes the caller's task; outside the gate, once the start has left the queue.</summary>
    public void Complete()
    {
        if (Admitted is { } entry)
        {
            TrySetResult(new RunHandle(entry));
        }
        else
        {
            TrySetException(Failure!);
        }

        // After the task completes (a full fence), paired with PublishQueued, which stores the registration and then
        // looks at the task: whichever of the two comes second unregisters, so a start settled on another thread while
        // its registration was being made never leaves it on the caller's token.
        Registration.Unregister();
    }
}
