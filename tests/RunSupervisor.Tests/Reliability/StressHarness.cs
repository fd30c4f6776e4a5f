using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>Settings of one randomized stress run.</summary>
internal sealed record StressSettings(int Seed, long TotalOperations, int Workers, int OperationsPerRound, bool RealTime)
{
    /// <summary>The environment variable that fixes the seed (otherwise a random one is drawn and printed).</summary>
    public const string SeedVariable = "STRESS_SEED";

    /// <summary>The environment variable that sets the total number of operations (for example 1000000 locally).</summary>
    public const string OperationsVariable = "STRESS_OPS";

    /// <summary>The seed from <see cref="SeedVariable"/>, or a fresh one.</summary>
    public static int SeedFromEnvironment()
        => int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed)
            ? seed
            : Random.Shared.Next();

    /// <summary>The operation count from <see cref="OperationsVariable"/>, or <paramref name="fallback"/>.</summary>
    public static long OperationsFromEnvironment(long fallback)
        => long.TryParse(Environment.GetEnvironmentVariable(OperationsVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out long ops) && ops > 0
            ? ops
            : fallback;
}

/// <summary>What a stress run did, for the test output and the README figures.</summary>
internal sealed record StressReport(
    long Operations,
    int Rounds,
    long RunsStarted,
    IReadOnlyDictionary<RunEndReason, int> EndReasons,
    long HeartbeatsDropped,
    int HeartbeatsOwed,
    long AbandonedAtEnd,
    long FakeTimeAdvancedMs,
    TimeSpan Elapsed)
{
    public override string ToString()
        => $"{Operations:N0} operations in {Rounds} rounds, {Elapsed.TotalSeconds:0.0} s; {RunsStarted:N0} runs started; ended: "
            + string.Join(", ", EndReasons.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value:N0}"))
            + $"; heartbeats dropped {HeartbeatsDropped:N0}, owed {HeartbeatsOwed:N0}; ledger before settling {AbandonedAtEnd:N0}; fake time {FakeTimeAdvancedMs:N0} ms";
}

/// <summary>
/// A seeded, randomized, multi-threaded workout of the registry, its handles and the heartbeat policy, with a
/// model of what must hold checked after every round (all workers and the clock paused at a barrier) and at the end.
/// </summary>
/// <remarks>
/// <para>The seed fixes every worker's sequence of operations and the clock's steps; the thread interleaving is
/// the scheduler's. A failure names the seed, so the same operation sequences can be replayed with
/// <c>STRESS_SEED</c>.</para>
/// <para>Work that the registry hands to the thread pool (the provider invocation of <c>RunAsync</c>, the tails of
/// waits and drains) may still be finishing when the barrier is reached, so a round's check is retried until the
/// state is consistent, within a bound: a real inconsistency persists and fails; a transition in flight does not.
/// Transient orderings (an end notification raised before the entry is gone, twice for one run) are checked inside
/// the event handlers themselves.</para>
/// </remarks>
internal sealed class StressHarness : IDisposable
{
    private static readonly string[] Sessions = ["s0", "s1", "s2", "s3"];
    private static readonly TimeSpan ConsistencyBound = TimeSpan.FromSeconds(10);

    private readonly StressSettings _settings;
    private readonly TimerTrackingTimeProvider? _fake;
    private readonly TimeProvider _time;
    private readonly RunSupervisorOptions _options;
    private readonly ActiveRunRegistry _registry;
    private readonly HeartbeatQueuePolicy _policy;
    private readonly TimeSpan _slack;

    // The model, filled from the workers' results and the registry's events.
    private readonly ConcurrentDictionary<long, RunRecord> _records = new();
    private readonly ConcurrentDictionary<long, RunEndedEventArgs> _ended = new();
    private readonly ConcurrentDictionary<long, int> _endedCount = new();
    private readonly ConcurrentDictionary<long, int> _owedCount = new();
    private readonly ConcurrentQueue<string> _violations = new();
    private readonly ConcurrentQueue<Task> _waits = new();
    private readonly ConcurrentQueue<(Task Call, ProviderKind Kind)> _runAsyncCalls = new();
    private readonly ConcurrentQueue<TaskCompletionSource<int>> _zombies = new();
    private readonly ConcurrentQueue<RunRecord> _leftHeld = new();
    private readonly ThreadLocal<long> _endingRun = new();
    private long _started;
    private long _operations;
    private long _dropped;
    private long _owedTotal;
    private int _pendingRunAsyncZombies;
    private int _workersDone;
    private int _clockDemand;
    private volatile bool _stop;

    public StressHarness(StressSettings settings)
    {
        _settings = settings;
        if (settings.RealTime)
        {
            _time = TimeProvider.System;
            _options = new RunSupervisorOptions
            {
                RunTimeout = TimeSpan.FromMilliseconds(20),
                GracePeriod = TimeSpan.FromMilliseconds(10),
                MaxRunDuration = TimeSpan.FromMilliseconds(60),
                MaxAbandonedRuns = 256,
            };

            // A loaded 2-core machine can run a timer callback late; the bound only has to catch "never".
            _slack = TimeSpan.FromSeconds(2);
        }
        else
        {
            _fake = new TimerTrackingTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
            _time = _fake;
            _options = new RunSupervisorOptions
            {
                RunTimeout = TimeSpan.FromSeconds(1),
                GracePeriod = TimeSpan.FromMilliseconds(500),
                MaxRunDuration = TimeSpan.FromSeconds(3),
                MaxAbandonedRuns = 256,
            };

            // StartedAt and the monotonic start are read one after the other; a clock step can fall in between.
            _slack = MaxClockStep;
        }

        _registry = new ActiveRunRegistry(_options, _time);

        // Subscribed before the policy, so this handler runs first and the policy's HeartbeatOwed (raised from its
        // own RunEnded handler on the same thread) can be attributed to the run that ended.
        _registry.RunEnded += OnRunEnded;
        _policy = new HeartbeatQueuePolicy(_registry);
        _policy.HeartbeatOwed += OnHeartbeatOwed;
    }

    private enum ProviderKind
    {
        CompletesSynchronously,
        ThrowsSynchronously,
        HonoursToken,
        Never,
    }

    private static TimeSpan MaxClockStep => TimeSpan.FromMilliseconds(250);

    /// <summary>Runs a harness with <paramref name="settings"/>; any failure comes back as a <see cref="StressFailureException"/> naming the seed.</summary>
    public static StressReport RunWithSeedOnFailure(StressSettings settings)
    {
        try
        {
            using var harness = new StressHarness(settings);
            return harness.Run();
        }
        catch (Exception ex)
        {
            throw new StressFailureException(settings.Seed, ex);
        }
    }

    /// <summary>Each worker asks the clock thread for one step every this many operations.</summary>
    private static int OperationsPerClockStep => 4;

    public StressReport Run()
    {
        var stopwatch = Stopwatch.StartNew();
        int rounds = 0;
        long perRound = (long)_settings.Workers * _settings.OperationsPerRound;
        int totalRounds = (int)Math.Max(1, (_settings.TotalOperations + perRound - 1) / perRound);
        using var barrier = new Barrier(_settings.Workers + 1, _ =>
        {
            rounds++;
            Volatile.Write(ref _workersDone, 0);
            if (!_settings.RealTime && !_stop)
            {
                CheckRound();
            }
        });

        var threads = new List<Thread>();
        var failures = new ConcurrentQueue<Exception>();
        for (int w = 0; w < _settings.Workers; w++)
        {
            int worker = w;
            threads.Add(new Thread(() => Guarded(failures, barrier, () => Work(worker, totalRounds, barrier))) { IsBackground = true, Name = $"stress worker {w}" });
        }

        threads.Add(new Thread(() => Guarded(failures, barrier, () => DriveClock(totalRounds, barrier))) { IsBackground = true, Name = "stress clock" });
        foreach (Thread thread in threads)
        {
            thread.Start();
        }

        foreach (Thread thread in threads)
        {
            if (!thread.Join(TimeSpan.FromMinutes(10)))
            {
                throw new TimeoutException("A stress thread did not finish within 10 minutes.");
            }
        }

        if (!failures.IsEmpty)
        {
            throw new AggregateException(failures);
        }

        long abandonedAtEnd = Finish();
        stopwatch.Stop();
        return new StressReport(
            Interlocked.Read(ref _operations),
            rounds,
            Interlocked.Read(ref _started),
            _ended.Values.GroupBy(e => e.Reason).ToDictionary(g => g.Key, g => g.Count()),
            Interlocked.Read(ref _dropped),
            (int)Interlocked.Read(ref _owedTotal),
            abandonedAtEnd,
            _fake is null ? 0 : (long)(_fake.GetUtcNow() - _fake.Start).TotalMilliseconds,
            stopwatch.Elapsed);
    }

    public void Dispose()
    {
        _policy.Dispose();
        _registry.Dispose();
        _endingRun.Dispose();
    }

    /// <summary>A stable per-thread seed (HashCode.Combine is randomized per process, so it would not replay).</summary>
    private static int DeriveSeed(int seed, int stream) => unchecked((seed * 486187739) + ((stream + 2) * 16777619));

    private void Guarded(ConcurrentQueue<Exception> failures, Barrier barrier, Action body)
    {
        try
        {
            body();
        }
        catch (BarrierPostPhaseException ex)
        {
            _stop = true;
            failures.Enqueue(ex.InnerException ?? ex);
            barrier.RemoveParticipant();
        }
#pragma warning disable CA1031 // Collected and rethrown on the test thread, with the seed.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _stop = true;
            failures.Enqueue(ex);
            barrier.RemoveParticipant();
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Threads
    // ---------------------------------------------------------------------------------------------------------

    private void DriveClock(int totalRounds, Barrier barrier)
    {
        var random = new Random(DeriveSeed(_settings.Seed, -1));
        for (int round = 0; round < totalRounds && !_stop; round++)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _workersDone) < _settings.Workers && !_stop)
            {
                // One step per request: fake time moves with the work done, not with how fast this thread spins, so
                // the mix of outcomes does not depend on the machine's speed or load.
                if (_fake is not null && Volatile.Read(ref _clockDemand) > 0)
                {
                    Interlocked.Decrement(ref _clockDemand);
                    _fake.Advance(TimeSpan.FromMilliseconds(random.Next(1, (int)MaxClockStep.TotalMilliseconds + 1)));
                    spin = default;
                }
                else
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }

            barrier.SignalAndWait();
        }

        // Leave the barrier, so that workers finishing their rounds after a failure are not left waiting for the clock.
        barrier.RemoveParticipant();
    }

    private void Work(int worker, int totalRounds, Barrier barrier)
    {
        var random = new Random(DeriveSeed(_settings.Seed, worker));
        var held = new List<RunRecord>();
        for (int round = 0; round < totalRounds; round++)
        {
            for (int i = 0; i < _settings.OperationsPerRound && !_stop; i++)
            {
                if (Interlocked.Increment(ref _operations) > _settings.TotalOperations)
                {
                    Interlocked.Decrement(ref _operations);
                    break;
                }

                DoOne(random, held);
                if (i % OperationsPerClockStep == 0)
                {
                    Interlocked.Increment(ref _clockDemand);
                }
            }

            Interlocked.Increment(ref _workersDone);
            barrier.SignalAndWait();
        }

        foreach (RunRecord record in held)
        {
            _leftHeld.Enqueue(record);
        }
    }

    private void DoOne(Random random, List<RunRecord> held)
    {
        string session = Sessions[random.Next(Sessions.Length)];
        switch (random.Next(20))
        {
            case 0:
            case 1:
                StartOne(random, held, session, supersede: false, tryStart: false);
                break;
            case 2:
                StartOne(random, held, session, supersede: false, tryStart: true);
                break;
            case 3:
                // Supersede half as often as a plain start: with four sessions it would otherwise end most runs.
                StartOne(random, held, session, supersede: random.Next(2) == 0, tryStart: random.Next(2) == 0);
                break;
            case 4:
                Release(random, held, async: false);
                break;
            case 5:
                Release(random, held, async: true);
                break;
            case 6:
                // TryAbort with the right run id (a held run's, or whichever run the session has now).
                if (held.Count > 0 && random.Next(2) == 0)
                {
                    RunRecord r = held[random.Next(held.Count)];
                    _registry.TryAbort(r.Handle.SessionId, r.Handle.RunId, "stress");
                }
                else if (_registry.TryGetRun(session, out RunInfo? info))
                {
                    _registry.TryAbort(session, info.RunId, "stress");
                }

                break;
            case 7:
                TryAbortWrongRunId(random, session);
                break;
            case 8:
                if (held.Count > 0)
                {
                    RunRecord r = held[random.Next(held.Count)];
                    bool wasRunning = r.Handle.Status == RunStatus.Running;
                    bool extended = r.Handle.TryExtendDeadline(Scaled(random.Next(1, 1500)));
                    if (extended && !wasRunning)
                    {
                        Violation($"run {r.Handle.RunId}: TryExtendDeadline succeeded although the run was {r.Handle.Status} before the call");
                    }
                }

                break;
            case 9:
            case 10:
                AttachOne(random, held);
                break;
            case 11:
                SettleOne(random, held);
                break;
            case 12:
                if (held.Count > 0 && random.Next(2) == 0)
                {
                    held[random.Next(held.Count)].Handle.Abort("stress");
                }
                else
                {
                    Resolve(random, session);
                }

                break;
            case 13:
            case 14:
                Resolve(random, session);
                break;
            case 15:
                Track(_registry.WaitForRunEndAsync(session, Scaled(random.Next(0, 2000))));
                break;
            case 16:
                if (random.Next(8) == 0)
                {
                    var options = new DrainOptions { AbortRemaining = random.Next(2) == 0, ForceEvictOverdue = random.Next(2) == 0 };
                    Track(DrainAndCheckAsync(Scaled(random.Next(0, 1000)), options));
                }
                else
                {
                    Resolve(random, session);
                }

                break;
            default:
                RunAsyncOne(random, session);
                break;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Operations
    // ---------------------------------------------------------------------------------------------------------

    private void StartOne(Random random, List<RunRecord> held, string session, bool supersede, bool tryStart)
    {
        RunStartOptions? options = random.Next(4) switch
        {
            0 => null,
            1 => new RunStartOptions { WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject, Timeout = Scaled(random.Next(50, 2000)) },
            _ => new RunStartOptions { WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject },
        };
        if (options is null && supersede)
        {
            options = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede };
        }

        RunHandle? handle;
        if (tryStart)
        {
            if (!_registry.TryStart(session, out handle, options))
            {
                return;
            }
        }
        else
        {
            try
            {
                handle = _registry.Start(session, options);
            }
            catch (SessionBusyException busy)
            {
                if (busy.SessionId != session)
                {
                    Violation($"SessionBusyException names '{busy.SessionId}' for a start on '{session}'");
                }

                return;
            }
        }

        Interlocked.Increment(ref _started);
        var record = new RunRecord(handle);
        if (!_records.TryAdd(handle.RunId, record))
        {
            Violation($"run id {handle.RunId} issued twice");
        }

        // Keep a handful per worker; the oldest is released (or left behind, like a zombie whose finally never runs).
        if (held.Count >= 4)
        {
            RunRecord oldest = held[0];
            held.RemoveAt(0);
            if (random.Next(3) > 0)
            {
                oldest.Dispose();
            }
            else
            {
                _leftHeld.Enqueue(oldest);
            }
        }

        held.Add(record);
    }

    private static void Release(Random random, List<RunRecord> held, bool async)
    {
        if (held.Count == 0)
        {
            return;
        }

        int index = random.Next(held.Count);
        RunRecord record = held[index];
        held.RemoveAt(index);
        if (async)
        {
            ValueTask pending = record.DisposeAsync();
            if (!pending.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException("RunHandle.DisposeAsync is documented to complete synchronously.");
            }
        }
        else
        {
            record.Dispose();
        }

        // Dispose twice: idempotent.
        record.Dispose();
    }

    private void TryAbortWrongRunId(Random random, string session)
    {
        if (!_registry.TryGetRun(session, out RunInfo? before))
        {
            return;
        }

        long wrong = random.Next(2) == 0 ? before.RunId + 1 + random.Next(1000) : Math.Max(0, before.RunId - 1 - random.Next(1000));
        bool aborted = _registry.TryAbort(session, wrong, "stress: wrong run id");

        // A run with the wrong id can only be aborted if it has become the session's run in the meantime.
        if (aborted && wrong < before.RunId)
        {
            Violation($"TryAbort('{session}', {wrong}) aborted something although run {before.RunId} (newer) was current");
        }
    }

    private void AttachOne(Random random, List<RunRecord> held)
    {
        if (held.Count == 0)
        {
            return;
        }

        RunRecord record = held[random.Next(held.Count)];
        if (record.Provider is not null)
        {
            return;
        }

        var provider = new TaskCompletionSource<int>();
        record.Provider = provider;
        switch (random.Next(5))
        {
            case 0:
                provider.SetResult(1);
                break;
            case 1:
                provider.SetException(new InvalidOperationException($"stress provider fault (run {record.Handle.RunId})"));
                break;
            case 2:
                // Honours the abort token: settles (cancelled) when the run is aborted, timed out, superseded or evicted.
                record.Registration = record.Handle.AbortToken.Register(() => provider.TrySetCanceled());
                break;
            case 3:
                // Never settles on its own: a zombie until the end of the stress run.
                _zombies.Enqueue(provider);
                break;
            default:
                // Settles later, when this worker picks it in SettleOne.
                break;
        }

        record.Handle.Attach(provider.Task);
    }

    private static void SettleOne(Random random, List<RunRecord> held)
    {
        RunRecord? record = held.FirstOrDefault(r => r.Provider is { Task.IsCompleted: false });
        if (record is null)
        {
            return;
        }

        if (random.Next(3) == 0)
        {
            record.Provider!.TrySetException(new InvalidOperationException($"stress provider fault (run {record.Handle.RunId})"));
        }
        else
        {
            record.Provider!.TrySetResult(2);
        }
    }

    private void Resolve(Random random, string session)
    {
        var request = new QueueRequest(
            session,
            IsHeartbeat: random.Next(2) == 0,
            Mode: (QueueMode)random.Next(5),
            HasQueuedFollowups: random.Next(8) == 0,
            ResetTriggered: random.Next(6) == 0,
            ShouldFollowup: random.Next(4) == 0);
        QueueDecision decision = _policy.Resolve(request);
        if (decision.Action == QueueAction.Drop)
        {
            Interlocked.Increment(ref _dropped);
            if (!request.IsHeartbeat)
            {
                Violation($"a non-heartbeat request was dropped: {request}");
            }
        }
    }

    private void RunAsyncOne(Random random, string session)
    {
        var kind = (ProviderKind)random.Next(4);
        RunStartOptions? options = random.Next(6) == 0 ? new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede } : null;
        Task call;
        try
        {
            call = _registry.RunAsync(
                session,
                ct => kind switch
                {
                    ProviderKind.CompletesSynchronously => Task.FromResult(3),
                    ProviderKind.ThrowsSynchronously => throw new InvalidOperationException("stress provider threw before its first await"),
                    ProviderKind.HonoursToken => Task.Delay(Timeout.Infinite, ct).ContinueWith(static _ => 4, CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default),
                    _ => NewZombie(),
                },
                options);
        }
        catch (SessionBusyException)
        {
            return;
        }

        Interlocked.Increment(ref _started);
        _runAsyncCalls.Enqueue((call, kind));
    }

    private Task<int> NewZombie()
    {
        var provider = new TaskCompletionSource<int>();
        Interlocked.Increment(ref _pendingRunAsyncZombies);
        _zombies.Enqueue(provider);
        return provider.Task;
    }

    private async Task DrainAndCheckAsync(TimeSpan timeout, DrainOptions options)
    {
        DrainResult result = await _registry.DrainAsync(timeout, options).ConfigureAwait(false);
        string[] all = [.. result.Drained, .. result.Aborted, .. result.Evicted, .. result.StillRunning];
        if (all.Length != all.Distinct(StringComparer.Ordinal).Count())
        {
            Violation($"a drain listed a session twice: {string.Join(",", all)}");
        }

        if (!options.AbortRemaining && result.Aborted.Count > 0)
        {
            Violation("a drain without AbortRemaining aborted runs");
        }

        if (result.IsComplete != (all.Length == result.Drained.Count))
        {
            Violation("DrainResult.IsComplete disagrees with its lists");
        }
    }

    private void Track(Task task) => _waits.Enqueue(task);

    /// <summary>A duration given in thousandths of the registry's run timeout (milliseconds on the fake clock).</summary>
    private TimeSpan Scaled(int thousandths) => TimeSpan.FromTicks(Math.Max(1, _options.RunTimeout.Ticks * thousandths / 1000));

    // ---------------------------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------------------------

    private void OnRunEnded(object? sender, RunEndedEventArgs e)
    {
        if (_registry.FindEntry(e.SessionId)?.RunId == e.RunId)
        {
            Violation($"RunEnded for run {e.RunId} raised while it was still registered");
        }

        if (_endedCount.AddOrUpdate(e.RunId, 1, static (_, n) => n + 1) > 1)
        {
            Violation($"RunEnded raised more than once for run {e.RunId}");
        }

        _ended[e.RunId] = e;
        if (_records.TryGetValue(e.RunId, out RunRecord? record) && record.Handle.Completion.IsCompleted)
        {
            Violation($"run {e.RunId}: Completion completed before RunEnded was raised");
        }

        _endingRun.Value = e.RunId;
    }

    private void OnHeartbeatOwed(object? sender, HeartbeatOwedEventArgs e)
    {
        long runId = _endingRun.Value;
        if (!_ended.TryGetValue(runId, out RunEndedEventArgs? ended) || ended.SessionId != e.SessionId)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' not raised from that session's run end");
        }

        if (_owedCount.AddOrUpdate(runId, 1, static (_, n) => n + 1) > 1)
        {
            Violation($"HeartbeatOwed raised more than once for the end of run {runId}");
        }

        if (e.DroppedHeartbeats <= 0)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' with {e.DroppedHeartbeats} dropped heartbeats");
        }

        if (_registry.FindEntry(e.SessionId) is not null && !_registry.IsDisposed)
        {
            // Not a violation by itself (a new run may start right after the end), but it must not be the run that ended.
            if (_registry.FindEntry(e.SessionId)?.RunId == runId)
            {
                Violation($"HeartbeatOwed raised while run {runId} still owned '{e.SessionId}'");
            }
        }

        Interlocked.Add(ref _owedTotal, e.DroppedHeartbeats);
    }

    private void Violation(string message) => _violations.Enqueue(message);

    // ---------------------------------------------------------------------------------------------------------
    // Checks
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>Run at the barrier: every worker and the clock are paused.</summary>
    private void CheckRound()
    {
        ThrowIfViolations();
        string? problem = WaitUntilConsistent(CheckModel);
        if (problem is not null)
        {
            throw new InvalidOperationException($"Invariant broken after a round: {problem}");
        }

        // Verified runs that have ended are no longer needed by the model; keep the live ones.
        foreach ((long id, RunRecord record) in _records)
        {
            if (record.Handle.Completion.IsCompleted && record.Released && record.Provider is null or { Task.IsCompleted: true })
            {
                _records.TryRemove(id, out _);
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

        // No run outlives its deadline + grace (plus the clock's slack).
        DateTimeOffset now = _time.GetUtcNow();
        foreach (RunInfo run in active)
        {
            if (now >= run.Deadline + _options.GracePeriod + _slack)
            {
                return $"run {run.RunId} still active at {now:O}, past its deadline {run.Deadline:O} + grace {_options.GracePeriod} + {_slack}";
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

        // The final drain: abort what remains, evict what is overdue; then let every grace period run out.
        DrainResult drain = _registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true, ForceEvictOverdue = true })
            .WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        _ = drain;
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

        foreach ((Task call, ProviderKind kind) in _runAsyncCalls)
        {
            try
            {
                call.WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                if (kind is ProviderKind.ThrowsSynchronously)
                {
                    throw new InvalidOperationException("A RunAsync whose provider threw completed successfully.");
                }
            }
            catch (Exception ex) when (IsAllowedRunAsyncOutcome(ex, kind))
            {
            }
        }

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

    private static bool IsAllowedRunAsyncOutcome(Exception ex, ProviderKind kind) => ex switch
    {
        // Any kind: on two busy cores the fake clock can pass deadline + grace before the pool has invoked the provider.
        RunEvictedException => true,
        RunTimedOutException => kind is ProviderKind.HonoursToken,
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
