using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's model checks: after every round (all threads paused) and at the end, after the final drain.</summary>
internal sealed partial class StressHarness
{
    /// <summary>Run at the barrier: every worker and the clock are paused.</summary>
    private void CheckRound()
    {
        ThrowIfViolations();
        string? problem = WaitUntilConsistent(CheckModel);
        if (problem is not null)
        {
            throw new InvalidOperationException($"Invariant broken after a round: {problem}");
        }

        AfterConsistentRound();
        AdvanceIdleRecords();
        ThrowIfViolations();

        // Verified runs that have ended are no longer needed by the model; keep the live ones.
        foreach ((long id, RunRecord record) in _records)
        {
            if (record.Handle.Completion.IsCompleted && record.Released && record.Provider is null or { Task.IsCompleted: true } && record.EndChecked)
            {
                _records.TryRemove(id, out _);
            }
        }

        foreach (long id in _startedAt.Keys)
        {
            if (_ended.ContainsKey(id))
            {
                _startedAt.TryRemove(id, out _);
            }
        }
    }

    private static string? WaitUntilConsistent(Func<string?> check)
    {
        var stopwatch = Stopwatch.StartNew();
        string? problem = check();
        while (problem is not null && stopwatch.Elapsed < ConsistencyBound)
        {
            Thread.Yield();
            problem = check();
        }

        return problem;
    }

    /// <summary>The model check; <see langword="null"/> when every invariant holds.</summary>
    private string? CheckModel()
    {
        long started = Interlocked.Read(ref _started);
        IReadOnlyList<RunInfo> active = _registry.GetActiveRuns();
        int activeCount = _registry.ActiveCount;
        if (activeCount != active.Count)
        {
            return $"ActiveCount {activeCount} but {active.Count} active runs listed";
        }

        if (active.Select(r => r.SessionId).Distinct(StringComparer.Ordinal).Count() != active.Count)
        {
            return "more than one current run for a session";
        }

        foreach (RunInfo run in active)
        {
            _startedAt.TryAdd(run.RunId, run.StartedAt);
        }

        // Run ids are 1..started: each is either current or has ended (RunEnded raised once), never both or neither.
        var current = active.Select(r => r.RunId).ToHashSet();
        if (current.Any(id => id < 1 || id > started))
        {
            return $"an active run id outside 1..{started}";
        }

        if (current.Any(_ended.ContainsKey))
        {
            return "a run is current although RunEnded was raised for it";
        }

        if (current.Count + _ended.Count != started)
        {
            return $"{started} runs started, but {current.Count} current + {_ended.Count} ended";
        }

        // The handles the workers hold agree with the registry.
        int currentHandles = 0;
        foreach (RunRecord record in _records.Values)
        {
            RunHandle h = record.Handle;
            bool isCurrent = h.IsCurrent;
            currentHandles += isCurrent ? 1 : 0;
            if (isCurrent != current.Contains(h.RunId))
            {
                return $"run {h.RunId}: IsCurrent {isCurrent} disagrees with the registry";
            }

            bool ended = _ended.TryGetValue(h.RunId, out RunEndedEventArgs? end);
            if (h.Completion.IsCompleted != ended)
            {
                return $"run {h.RunId}: Completion completed {h.Completion.IsCompleted} but RunEnded raised {ended}";
            }

            if (ended && h.Completion.Result != end!.Reason)
            {
                return $"run {h.RunId}: Completion {h.Completion.Result} but RunEnded {end.Reason}";
            }

            if (ended && h.EndedAt != end!.EndedAt)
            {
                return $"run {h.RunId}: EndedAt {h.EndedAt:O} but RunEnded.EndedAt {end.EndedAt:O}";
            }

            if (ended && end!.EndedAt < h.StartedAt && StressSettings.StrictEndOrder)
            {
                return $"run {h.RunId}: RunEnded.EndedAt {end.EndedAt:O} is before StartedAt {h.StartedAt:O}";
            }

            if (ended != (h.Status is RunStatus.Ended or RunStatus.Evicted))
            {
                return $"run {h.RunId}: status {h.Status} but ended {ended}";
            }

            if (ended && (h.Status == RunStatus.Evicted) != (end!.Reason == RunEndReason.ForceEvicted))
            {
                return $"run {h.RunId}: status {h.Status} for reason {end.Reason}";
            }
        }

        if (currentHandles > activeCount)
        {
            return $"{currentHandles} held handles are current but ActiveCount is {activeCount}";
        }

        string? more = CheckLivenessModel() ?? CheckAdmissionModel(active);
        if (more is not null)
        {
            return more;
        }

        // No run outlives its deadline + grace (plus the clock's slack).
        DateTimeOffset now = _time.GetUtcNow();
        foreach (RunInfo run in active)
        {
            if (now >= run.Deadline + _options.GracePeriod + _slack)
            {
                // The diagnosis names the earliest armed timer: later than the eviction instant means the watchdog was armed late.
                string armed = _fake?.EarliestArmedDue is DateTimeOffset due ? $"earliest armed timer due at {due:O}" : "no timer armed";
                return $"run {run.RunId} still active at {now:O}, past its deadline {run.Deadline:O} + grace {_options.GracePeriod} + {_slack} (status {run.Status}; {armed}; last watchdog lateness {_registry.WatchdogLateness})";
            }
        }

        // Heartbeats are never dropped silently: every drop is either still counted or was reported as owed.
        long stillCounted = Sessions.Sum(s => (long)_policy.GetDroppedHeartbeats(s));
        long dropped = Interlocked.Read(ref _dropped);
        long owed = Interlocked.Read(ref _owedTotal);
        if (stillCounted + owed != dropped)
        {
            return $"{dropped} heartbeats dropped but {stillCounted} counted + {owed} owed";
        }

        return null;
    }

    private void ThrowIfViolations()
    {
        if (!_violations.IsEmpty)
        {
            throw new InvalidOperationException("Invariant violated: " + string.Join(" | ", _violations.Take(10)));
        }
    }

    /// <summary>Stops, drains, checks the final state, then settles every zombie and checks again. Returns the ledger size before settling.</summary>
    private long Finish()
    {
        _stop = true;

        // The final drain: fail every waiting start (or it would be admitted as the runs end), abort what remains, evict
        // what is overdue; then let every grace period run out.
        DrainResult drain = _registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true, ForceEvictOverdue = true, CancelWaiting = true })
            .WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        Interlocked.Add(ref _drainCancelledReported, drain.CancelledStarts.Count);
        AdvanceOrWait(_options.MaxRunDuration + _options.GracePeriod + _slack);
        string? problem = WaitUntilConsistent(() =>
        {
            int active = _registry.ActiveCount;
            return active == 0 ? CheckModel() : $"{active} runs still active after the final drain and deadline + grace";
        });
        if (problem is not null)
        {
            throw new InvalidOperationException($"After the final drain: {problem}");
        }

        // Every wait and drain has finished, every RunAsync call has its outcome.
        Task.WhenAll(_waits).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(static _ => { }, TaskScheduler.Default).Wait();
        foreach (Task wait in _waits)
        {
            if (!wait.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException($"A wait or drain did not complete successfully: {wait.Status} {wait.Exception?.InnerException}");
            }
        }

        foreach ((Task call, ProviderKind kind, bool idle) in _runAsyncCalls)
        {
            try
            {
                call.WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                if (kind is ProviderKind.ThrowsSynchronously)
                {
                    throw new InvalidOperationException("A RunAsync whose provider threw completed successfully.");
                }
            }
            catch (Exception ex) when (IsAllowedRunAsyncOutcome(ex, kind, idle))
            {
            }
        }

        // Every waiting start has its one outcome (the drains that cancelled some have all finished by now).
        FinishAdmission();
        FinishIdleRecords();

        if (_fake is not null && _fake.ArmedTimers != 0)
        {
            throw new InvalidOperationException($"{_fake.ArmedTimers} timer(s) still pending after the final drain.");
        }

        // The ledger holds only runs whose provider is really still pending (or, without a provider, whose handle
        // was never disposed). RunAsync's own runs are not in the model by id; they are bounded by its zombies.
        IReadOnlyList<AbandonedRunInfo> ledger = _registry.GetAbandonedRuns();
        int unknown = 0;
        foreach (AbandonedRunInfo entry in ledger)
        {
            if (_records.TryGetValue(entry.RunId, out RunRecord? record))
            {
                bool pending = record.Provider is { } p ? !p.Task.IsCompleted : !record.Released;
                RunEndReason reason = _ended[entry.RunId].Reason;
                if (!pending || reason is not (RunEndReason.ForceEvicted or RunEndReason.Superseded))
                {
                    throw new InvalidOperationException($"Ledger entry for run {entry.RunId} ({reason}) whose provider is not pending.");
                }
            }
            else
            {
                unknown++;
            }
        }

        if (unknown > Volatile.Read(ref _pendingRunAsyncZombies) + _leftHeld.Count)
        {
            throw new InvalidOperationException($"{unknown} unexplained ledger entries.");
        }

        long abandonedBefore = ledger.Count;

        // Settle every zombie (half of them with a fault nobody awaits: the registry must observe it) and release
        // every handle left behind; then nothing may be left anywhere.
        int n = 0;
        while (_zombies.TryDequeue(out TaskCompletionSource<int>? zombie))
        {
            if (n++ % 2 == 0)
            {
                zombie.TrySetException(new InvalidOperationException("stress zombie settled with a fault at the end"));
            }
            else
            {
                zombie.TrySetResult(0);
            }
        }

        foreach (RunRecord record in _leftHeld)
        {
            record.Dispose();
        }

        foreach (RunRecord record in _records.Values)
        {
            record.Provider?.TrySetResult(0);
            record.Dispose();
        }

        problem = WaitUntilConsistent(() =>
        {
            int abandoned = _registry.AbandonedCount;
            int listed = _registry.GetAbandonedRuns().Count;
            return abandoned == 0 && listed == 0 ? null : $"ledger not empty after every provider settled: count {abandoned}, listed {listed}";
        });
        if (problem is not null)
        {
            throw new InvalidOperationException(problem);
        }

        long started = Interlocked.Read(ref _started);
        if (_ended.Count != started || _endedCount.Values.Any(c => c != 1))
        {
            throw new InvalidOperationException($"{started} runs started but {_ended.Count} ended (each must end exactly once).");
        }

        ThrowIfViolations();
        return abandonedBefore;
    }

    private static bool IsAllowedRunAsyncOutcome(Exception ex, ProviderKind kind, bool idle) => ex switch
    {
        // Any kind: on two busy cores the fake clock can pass deadline + grace before the pool has invoked the provider.
        RunEvictedException => true,
        // Stalled only for a run with an idle timeout: progress is never reported on RunAsync's runs.
        RunTimedOutException timedOut => kind is ProviderKind.HonoursToken && (timedOut.Reason == RunEndReason.TimedOut || (timedOut.Reason == RunEndReason.Stalled && idle)),
        // Superseded, or aborted by the final drain: whatever the provider does.
        OperationCanceledException => true,
        InvalidOperationException ioe => kind is ProviderKind.ThrowsSynchronously && ioe.Message.Contains("before its first await", StringComparison.Ordinal),
        _ => false,
    };

    private void AdvanceOrWait(TimeSpan span)
    {
        if (_fake is not null)
        {
            // In steps, so each watchdog wake-up fires close to its instant.
            for (TimeSpan done = TimeSpan.Zero; done < span; done += TimeSpan.FromMilliseconds(100))
            {
                _fake.Advance(TimeSpan.FromMilliseconds(100));
            }
        }
        else
        {
            // Real time: wait on the registry's own end notifications, bounded.
            _registry.DrainAsync(span + _slack).WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        }
    }

    /// <summary>A run started by a worker through Start/TryStart, with its attached provider.</summary>
    private sealed class RunRecord : IDisposable, IAsyncDisposable
    {
        public RunRecord(RunHandle handle) => Handle = handle;

        public RunHandle Handle { get; }

        public TaskCompletionSource<int>? Provider { get; set; }

        public CancellationTokenRegistration Registration { get; set; }

        public bool Released { get; private set; }

        /// <summary>Gets or sets the clock reading before the worker's last <see cref="RunHandle.ReportProgress"/> on the run.</summary>
        public long LastReportTicks { get; set; }

        /// <summary>
        /// Gets or sets a lower bound of the last progress the watchdog can judge the run idle on: its start, then its last
        /// progress whenever, after a call that took the registry's lock, the run was still running (after a report, and
        /// at a round's check).
        /// </summary>
        public long IdleFloorTicks { get; set; }

        /// <summary>Gets or sets a value indicating whether the run's end has been checked against its idle timeout.</summary>
        public bool EndChecked { get; set; }

        public void Dispose()
        {
            Released = true;
            Handle.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Released = true;
            return Handle.DisposeAsync();
        }
    }
}
