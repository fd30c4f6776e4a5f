using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// A seeded, randomized, multi-threaded workout of the registry, its handles and the heartbeat policy, with a
/// model of what must hold checked after every round (all workers and the clock paused at a barrier) and at the end.
/// </summary>
/// <remarks>
/// <para>The seed fixes every worker's sequence of operations (which operation on which session), the clock's steps
/// and the registry's admission settings; the thread interleaving is the scheduler's, and so are the arguments that
/// depend on what a worker holds at the time. A failure names the seed, so the same operation sequences can be
/// replayed with <c>STRESS_SEED</c>.</para>
/// <para>Work that the registry hands to the thread pool (the provider invocation of <c>RunAsync</c>, the tails of
/// waits and drains) may still be finishing when the barrier is reached, so a round's check is retried until the
/// state is consistent, within a bound: a real inconsistency persists and fails; a transition in flight does not.
/// Transient orderings (an end notification raised before the entry is gone, twice for one run) are checked inside
/// the event handlers themselves.</para>
/// </remarks>
internal sealed partial class StressHarness : IDisposable
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

    // Whether the admission and liveness operations run (see StressSettings.UsesAdmission).
    private readonly bool _admission;

    // The model, filled from the workers' results and the registry's events.
    private readonly ConcurrentDictionary<long, RunRecord> _records = new();
    private readonly ConcurrentDictionary<long, RunEndedEventArgs> _ended = new();
    private readonly ConcurrentDictionary<long, int> _endedCount = new();
    private readonly ConcurrentDictionary<long, int> _owedCount = new();

    // The StartedAt of every run seen active at a round's check (RunAsync's runs have no handle in the model).
    private readonly ConcurrentDictionary<long, DateTimeOffset> _startedAt = new();
    private readonly ConcurrentQueue<string> _violations = new();
    private readonly ConcurrentQueue<string> _endOrderAnomalies = new();
    private readonly ConcurrentQueue<Task> _waits = new();
    private readonly ConcurrentQueue<(Task Call, ProviderKind Kind, bool Idle)> _runAsyncCalls = new();
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

        _admission = settings.UsesAdmission;
        if (_admission)
        {
            ConfigureAdmission(_options, new Random(DeriveSeed(settings.Seed, -2)));
        }

        _inbox = new ConcurrentQueue<RunRecord>[settings.Workers];
        for (int w = 0; w < _inbox.Length; w++)
        {
            _inbox[w] = new ConcurrentQueue<RunRecord>();
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
        StressHarness? harness = null;
        try
        {
            harness = new StressHarness(settings);
            return harness.Run();
        }
        catch (Exception ex)
        {
            harness?.ObserveOutstandingTasks();
            throw new StressFailureException(settings.Seed, ex);
        }
        finally
        {
            harness?.Dispose();
        }
    }

    /// <summary>
    /// After a failure, observes the tasks the final checks would have observed (the RunAsync calls whose provider threw,
    /// waits, waiter callbacks), so that the failure is reported once, with its seed, and not a second time by the
    /// unobserved-exception guard at the end of the test run.
    /// </summary>
    private void ObserveOutstandingTasks()
    {
        IEnumerable<Task> outstanding = _waits.Concat(_waiterCallbacks).Concat(_runAsyncCalls.Select(static c => c.Call));
        foreach (Task task in outstanding)
        {
            _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
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
            stopwatch.Elapsed,
            [.. _endOrderAnomalies],
            DescribeConfiguration(),
            _counters.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
            [.. _stampAnomalies]);
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

}
