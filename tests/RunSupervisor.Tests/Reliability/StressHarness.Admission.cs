using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The stress harness's admission operations: starts that may wait (<see cref="ActiveRunRegistry.StartAsync"/> with
/// <see cref="SessionBusyBehavior.Wait"/>, a capped lane or the global cap), their cancellation by the caller, and the
/// check on the spot of every outcome a start can have.
/// </summary>
/// <remarks>
/// <para><b>Arrival.</b> The registry queues a waiting start inside its <c>StartAsync</c> call, under its own lock, so
/// which of two concurrent calls arrived first is not observable from outside. The harness therefore makes every
/// <c>StartAsync</c> call under one lock of its own (<see cref="_arrivalGate"/>) and numbers it there: calls never
/// overlap, so the numbers are the order in which the registry queued them, across sessions and lanes. Only those calls
/// are serialized; releases, aborts, supersedes, sync starts, drains and the clock still race with them.</para>
/// <para><b>Who waited.</b> A call whose task is still pending when it returns was queued (a start that is admitted or
/// refused at once returns a completed task). A call that was queued and settled before it returned looks like one
/// that never waited: it is left out of the order checks, which only costs coverage.</para>
/// </remarks>
internal sealed partial class StressHarness
{
    private static readonly string?[] LaneNames = [null, "cron", "bulk"];

    private readonly Lock _arrivalGate = new();

    // Per session (index into Sessions), the starts that waited, in arrival order; written under _arrivalGate, read at
    // the round's check (all workers paused) and pruned there once settled.
    private readonly List<Waiter>[] _waiters = [.. Sessions.Select(_ => new List<Waiter>())];

    // Runs admitted from the queue, handed to the worker that asked for them (the continuation runs on the pool).
    private readonly ConcurrentQueue<RunRecord>[] _inbox;
    private readonly ConcurrentQueue<Task> _waiterCallbacks = new();
    private readonly ConcurrentDictionary<string, long> _counters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, byte> _backgroundRuns = new();

    // Run ids a foreground start was refused for as busy: checked against the background runs once every start is recorded.
    private readonly ConcurrentQueue<long> _busyForForeground = new();

    // Runs of waiting starts admitted at once while an earlier start of their session still waited.
    private readonly ConcurrentQueue<long> _overtakers = new();
    private readonly ConcurrentDictionary<string, long> _failedStarts = new(StringComparer.Ordinal);
    private long _arrivals;

    // A logical clock for "observed before": taken when a waiter's outcome is observed and just before a waiter is cancelled.
    private long _stamp;
    private long _drainCancelledReported;
    private long _maxTimeoutOvershootTicks;

    /// <summary>The registry's admission settings for this seed: a global cap (sometimes none), two capped lanes, a small session queue.</summary>
    private static void ConfigureAdmission(RunSupervisorOptions options, Random config)
    {
        options.QueueTimeout = TimeSpan.FromTicks(options.RunTimeout.Ticks * 6 / 5);
        options.MaxQueuedPerSession = 3;
        options.QueueOverflow = config.Next(2) == 0 ? QueueOverflowBehavior.RejectNewest : QueueOverflowBehavior.CancelOldest;
        options.MaxActiveRuns = config.Next(3) switch { 0 => 0, 1 => 2, _ => 3 };

        // Without a global cap only the lanes make starts wait for a slot: then "cron" is a single slot, so they do often.
        options.Lanes["cron"] = options.MaxActiveRuns == 0 ? 1 : config.Next(1, 3);
        options.Lanes["bulk"] = 2;

        // Sometimes every run has an idle timeout (shorter than the run timeout), so starts turn it off per run too.
        options.IdleTimeout = config.Next(4) == 0 ? TimeSpan.FromTicks(options.RunTimeout.Ticks * 9 / 10) : null;
    }

    private string DescribeConfiguration() => !_admission
        ? "no admission operations"
        : string.Create(
            CultureInfo.InvariantCulture,
            $"MaxActiveRuns {_options.MaxActiveRuns}, lanes cron {_options.Lanes["cron"]} bulk {_options.Lanes["bulk"]}, {_options.MaxQueuedPerSession} queued per session ({_options.QueueOverflow}), queue timeout {_options.QueueTimeout.TotalMilliseconds} ms, idle timeout {(_options.IdleTimeout is { } idle ? $"{idle.TotalMilliseconds} ms" : "off")}; largest queue-timeout overshoot {TimeSpan.FromTicks(Interlocked.Read(ref _maxTimeoutOvershootTicks)).TotalMilliseconds} ms");

    private void Count(string name) => _counters.AddOrUpdate(name, 1, static (_, n) => n + 1);

    private static int SessionIndex(string session) => Array.IndexOf(Sessions, session);

    private static string? RandomLane(Random random) => random.Next(10) switch { < 5 => null, < 8 => LaneNames[1], _ => LaneNames[2] };

    private int LaneCap(string? lane) => lane is null ? int.MaxValue : _options.Lanes[lane];

    private TimeSpan? RandomIdleTimeout(Random random) => random.Next(4) switch
    {
        0 => Scaled(random.Next(100, 900)),
        1 when _options.IdleTimeout is not null && random.Next(2) == 0 => Timeout.InfiniteTimeSpan,
        _ => null,
    };

    /// <summary>Options with the admission and liveness features, for a start of any kind.</summary>
    private RunStartOptions AdmissionOptions(Random random, SessionBusyBehavior whenBusy, bool mayWait) => new()
    {
        WhenBusy = whenBusy,
        Timeout = random.Next(4) == 0 ? Scaled(random.Next(200, 2000)) : null,
        QueueTimeout = !mayWait ? null : random.Next(10) switch { 0 => TimeSpan.Zero, < 4 => null, _ => Scaled(random.Next(50, 1500)) },
        Lane = RandomLane(random),
        Background = random.Next(5) == 0,
        IdleTimeout = RandomIdleTimeout(random),
    };

    /// <summary>A start that may wait: Wait on a busy session, or any start in a full lane or registry.</summary>
    private void StartAsyncOne(Random random, WorkerState state, string session)
    {
        SessionBusyBehavior whenBusy = random.Next(10) switch { < 6 => SessionBusyBehavior.Wait, < 9 => SessionBusyBehavior.Reject, _ => SessionBusyBehavior.Supersede };
        RunStartOptions options = AdmissionOptions(random, whenBusy, mayWait: true);
        CancellationTokenSource? cancellation = random.Next(3) == 0 ? new CancellationTokenSource() : null;
        if (cancellation is not null && random.Next(12) == 0)
        {
            // Cancelled before the call: fails at once and never queues.
            cancellation.Cancel();
        }

        var waiter = new Waiter(state.Index, session, options, options.QueueTimeout ?? _options.QueueTimeout, cancellation);
        ValueTask<RunHandle> start = default;
        RunHandle? atOnce = null;
        Exception? failure = null;
        bool queued;
        lock (_arrivalGate)
        {
            waiter.Sequence = ++_arrivals;
            int queuedBefore = _registry.GetQueuedCount(session);
            waiter.CalledAtTicks = _registry.NowTicks();
            try
            {
                start = _registry.StartAsync(session, options, cancellation?.Token ?? CancellationToken.None);
            }
            catch (Exception ex) when (ex is not ArgumentException)
            {
                // StartAsync may fail by throwing as well as through its task; both are the same outcome.
                failure = ex;
            }

            waiter.ReturnedAtTicks = _registry.NowTicks();
            queued = failure is null && !start.IsCompleted;
            if (queued)
            {
                _waiters[SessionIndex(session)].Add(waiter);

                // No start of the session was queued before the call and none can arrive meanwhile, so a queued start
                // is this one: seen queued after the session was seen idle, it headed an idle session's queue then,
                // that is, it was ready for a slot. The runs counted so far bound the run ids issued by then from below.
                long runsSoFar = Interlocked.Read(ref _started);
                if (queuedBefore == 0 && !_registry.IsActive(session) && _registry.GetQueuedCount(session) > 0)
                {
                    waiter.ReadyRunFloor = runsSoFar;
                    _readyAtArrival.Add(waiter);
                    Count("ready for a slot at arrival");
                }
            }
            else if (failure is null && start.IsCompletedSuccessfully)
            {
                atOnce = start.Result;

                // A waiting start never overtakes its session's waiting starts: admitted at once while one still waits
                // (none can have arrived since), it must have preempted a background run, the one way past them; judged
                // at the round's check, once the preemption's end is known.
                if (whenBusy == SessionBusyBehavior.Wait && _registry.GetQueuedCount(session) > 0)
                {
                    _overtakers.Enqueue(atOnce.RunId);
                }
            }
            else
            {
                failure ??= FailureOf(start.AsTask());
            }
        }

        Count("async starts");
        if (queued)
        {
            Count("queued");
            _waiterCallbacks.Enqueue(start.AsTask().ContinueWith(
                task => OnWaiterSettled(waiter, task),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default));
            if (cancellation is not null)
            {
                state.Cancellable.Add(waiter);
            }
        }
        else if (atOnce is not null)
        {
            Hold(random, state.Held, RegisterRun(atOnce, options.Background));
            CheckCapsNow();
            cancellation?.Dispose();
        }
        else
        {
            CheckStartFailure(waiter, failure!, atOnce: true);
            cancellation?.Dispose();
        }
    }

    /// <summary>The outcome of a start that waited: a handle exactly once, or one of the documented failures.</summary>
    private void OnWaiterSettled(Waiter waiter, Task<RunHandle> task)
    {
        long stamp = Interlocked.Increment(ref _stamp);
        if (!task.IsCompletedSuccessfully)
        {
            Exception failure = FailureOf(task);
            CheckStartFailure(waiter, failure, atOnce: false);
            waiter.Settle(0, failure, stamp);
            return;
        }

        RunHandle handle = task.Result;
        RunEntry entry = handle.Entry;
        if (handle.SessionId != waiter.Session)
        {
            Violation($"start #{waiter.Sequence} on '{waiter.Session}' was admitted as run {handle.RunId} of '{handle.SessionId}'");
        }

        // The admitted run's deadline starts at admission, which is after the call queued it. The admitting transition
        // reads the clock before the registry's lock, so a reading older than the queueing can stamp it (and shorten
        // its deadline): reported as a stale stamp.
        if (entry.StartedAtTicks < waiter.CalledAtTicks)
        {
            StampAnomaly("admitted run started before its call", $"run {handle.RunId} admitted from the queue of '{waiter.Session}' started at {entry.StartedAtTicks}, {TimeSpan.FromTicks(waiter.CalledAtTicks - entry.StartedAtTicks)} before its StartAsync call at {waiter.CalledAtTicks}; deadline {entry.DeadlineTicks}");
        }

        if (entry.DeadlineTicks - entry.StartedAtTicks != waiter.RunTimeout(_options).Ticks)
        {
            Violation($"run {handle.RunId} admitted from the queue has a deadline {TimeSpan.FromTicks(entry.DeadlineTicks - entry.StartedAtTicks)} after its start, not its timeout {waiter.RunTimeout(_options)}");
        }

        RunRecord record = RegisterRun(handle, waiter.Background);
        waiter.Settle(handle.RunId, null, stamp);
        _admittedLog.Enqueue(waiter);
        _inbox[waiter.Worker].Enqueue(record);
        Count("admitted after waiting");
        CheckCapsNow();
    }

    /// <summary>Checks a failed start against what its options allow; counts it.</summary>
    private void CheckStartFailure(Waiter waiter, Exception failure, bool atOnce)
    {
        _failedStarts.AddOrUpdate(waiter.Session, 1, static (_, n) => n + 1);
        string what = $"start #{waiter.Sequence} on '{waiter.Session}' ({waiter.WhenBusy}, lane {waiter.Lane ?? "default"}, queue timeout {waiter.QueueTimeout})";
        switch (failure)
        {
            case RunQueueTimeoutException timedOut:
                if (timedOut.SessionId != waiter.Session || timedOut.Lane != waiter.Lane)
                {
                    Violation($"{what}: RunQueueTimeoutException names '{timedOut.SessionId}', lane {timedOut.Lane ?? "default"}");
                }

                if (timedOut.Waited < waiter.QueueTimeout)
                {
                    Violation($"{what}: timed out after waiting only {timedOut.Waited}");
                }

                if (waiter.QueueTimeout == TimeSpan.Zero && (!atOnce || timedOut.Waited != TimeSpan.Zero))
                {
                    Violation($"{what}: a zero queue timeout did not fail at once (waited {timedOut.Waited})");
                }

                // How late the watchdog was, beyond the time the call itself took: reported, not judged here. The fake
                // clock runs due timers on one thread at a time, whichever moved or re-armed one, so a thread preempted
                // in a timer callback holds the watchdog back while the clock thread moves on; the round's check, with
                // every thread paused, fails any start still waiting past its timeout.
                long overshoot = timedOut.Waited.Ticks - Math.Max(waiter.QueueTimeout.Ticks, waiter.ReturnedAtTicks - waiter.CalledAtTicks);
                InterlockedMax(ref _maxTimeoutOvershootTicks, overshoot);
                Count(waiter.QueueTimeout == TimeSpan.Zero ? "zero queue timeouts" : "queue timeouts");
                break;
            case RunQueueFullException full:
                // A start that may wait never finds a lane full: only the session's queue limit refuses it.
                bool pushedOut = _options.QueueOverflow == QueueOverflowBehavior.CancelOldest;
                if (full.SessionId != waiter.Session || full.Limit != _options.MaxQueuedPerSession || atOnce == pushedOut)
                {
                    Violation($"{what}: RunQueueFullException (session '{full.SessionId}', limit {full.Limit}, {(atOnce ? "at once" : "while waiting")}) with MaxQueuedPerSession {_options.MaxQueuedPerSession} and {_options.QueueOverflow}");
                }

                waiter.PushedOut = pushedOut;
                Count(pushedOut ? "pushed out of a full queue" : "refused by a full queue");
                break;
            case OperationCanceledException cancelled when waiter.Cancellation is { } cts && cancelled.CancellationToken == cts.Token:
                if (!cts.IsCancellationRequested)
                {
                    Violation($"{what}: cancelled with the caller's token, which was not cancelled");
                }

                waiter.CallerCancelled = !atOnce;
                Count(atOnce ? "cancelled before the call" : "cancelled while waiting");
                break;
            case OperationCanceledException cancelled when cancelled.CancellationToken == CancellationToken.None && cancelled.Message.Contains("draining", StringComparison.Ordinal):
                Count("cancelled by a drain");
                break;
            case SessionBusyException busy:
                // Reject refuses a busy session; a background Supersede is refused by a foreground run (which
                // CheckSupersededEnds then sees never replaced by a background one).
                bool refusable = waiter.WhenBusy == SessionBusyBehavior.Reject || (waiter.WhenBusy == SessionBusyBehavior.Supersede && waiter.Background);
                if (!refusable || !atOnce || busy.SessionId != waiter.Session)
                {
                    Violation($"{what}: SessionBusyException ({(atOnce ? "at once" : "while waiting")}, session '{busy.SessionId}')");
                }

                if (!waiter.Background && busy.RunId != 0)
                {
                    _busyForForeground.Enqueue(busy.RunId);
                }

                Count("refused as busy");
                break;
            case ObjectDisposedException when _registry.IsDisposed:
                break;
            default:
                Violation($"{what}: failed with {failure.GetType().Name}: {failure.Message}");
                break;
        }
    }

    /// <summary>Cancels the token of one of this worker's waiting starts; the start leaves the queue inside the call.</summary>
    private void CancelOneWaiting(Random random, WorkerState state)
    {
        List<Waiter> waiting = state.Cancellable;
        waiting.RemoveAll(static w =>
        {
            if (w.IsWaiting)
            {
                return false;
            }

            // Settled (its continuation has run), so the registry no longer holds a registration on the token.
            w.Cancellation!.Dispose();
            return true;
        });
        Waiter[] candidates = [.. waiting.Where(static w => w.CancelStamp == 0)];
        if (candidates.Length == 0)
        {
            return;
        }

        Waiter waiter = candidates[random.Next(candidates.Length)];

        // Stamped before the call: a start seen admitted before this stamp was admitted while this one still waited
        // (if the cancellation finds it waiting, it leaves the queue inside Cancel, on this thread).
        waiter.CancelStamp = Interlocked.Increment(ref _stamp);
        waiter.Cancellation!.Cancel();
    }

    /// <summary>
    /// Checks the caps while runs come and go. The active runs are read without a lock, so a run that left during the
    /// read may be listed with the run that took its slot; only runs still current when read again count. Each of those
    /// was in the registry from its first read to its second, and every first read came before every second, so all of
    /// them were in the registry together at the end of the first read: more of them than a cap is a real breach.
    /// </summary>
    private void CheckCapsNow()
    {
        if (!_admission)
        {
            return;
        }

        IReadOnlyList<RunInfo> seen = _registry.GetActiveRuns();
        if (!OverCap(seen, out _))
        {
            return;
        }

        List<RunInfo> together = [.. seen.Where(r => _registry.TryGetRun(r.SessionId, out RunInfo? again) && again.RunId == r.RunId)];
        if (OverCap(together, out string? breach))
        {
            Violation($"{breach} at once: {string.Join(", ", together.Select(r => $"run {r.RunId} ('{r.SessionId}', lane {r.Lane ?? "default"})"))}");
        }

        Count("cap checks that needed a second read");
    }

    private bool OverCap(IReadOnlyList<RunInfo> runs, [NotNullWhen(true)] out string? breach)
    {
        if (_options.MaxActiveRuns > 0 && runs.Count > _options.MaxActiveRuns)
        {
            breach = $"{runs.Count} active runs with MaxActiveRuns {_options.MaxActiveRuns}";
            return true;
        }

        foreach ((string lane, int cap) in _options.Lanes)
        {
            int inLane = runs.Count(r => r.Lane == lane);
            if (inLane > cap)
            {
                breach = $"{inLane} runs in lane '{lane}' with its cap {cap}";
                return true;
            }
        }

        breach = null;
        return false;
    }

    /// <summary>A sync start refused because its lane or the registry is full: the exception names the cap that was hit.</summary>
    private void CheckLaneFull(RunQueueFullException full, string session, string? lane)
    {
        bool laneCap = lane is not null && full.Limit == _options.Lanes[lane];
        bool globalCap = _options.MaxActiveRuns > 0 && full.Limit == _options.MaxActiveRuns;
        if (full.SessionId != session || full.Lane != lane || !(laneCap || globalCap))
        {
            Violation($"a sync start on '{session}' (lane {lane ?? "default"}) was refused with RunQueueFullException (session '{full.SessionId}', lane {full.Lane ?? "default"}, limit {full.Limit})");
        }

        Count("sync starts refused by a cap");
    }

    private static Exception FailureOf(Task task)
    {
        try
        {
            task.GetAwaiter().GetResult();
            return new InvalidOperationException("The task did not fail.");
        }
#pragma warning disable CA1031 // The failure is the value wanted; it is judged by the caller.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex;
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long current = Interlocked.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) is long seen && seen != current)
        {
            current = seen;
        }
    }
}
