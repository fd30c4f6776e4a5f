using System.Collections.Concurrent;
using RunSupervisor.Tests.TestSupport;
using Xunit.Abstractions;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Several threads starting, superseding, aborting and releasing runs on a handful of sessions while
/// another thread drives the fake clock through deadlines and grace periods. At the end nothing may be left and
/// every run must have ended exactly once.
/// </summary>
public sealed class ThreadSafetyTests
{
    private const int Workers = 4;
    private const int IterationsPerWorker = 3000;

    // The most handles one worker holds at once; holding some across iterations lets the clock time them out.
    private const int MaxHeldPerWorker = 4;

    // Upper bound for the clock thread's loop, so the test cannot spin forever if a worker is stuck.
    private const int MaxClockSteps = 2_000_000;

    // Every this many iterations a worker lets the clock move on a few steps while it holds its handles, so
    // deadlines and grace periods really do run out in the middle of the churn.
    private const int ClockSyncInterval = 64;
    private const int ClockStepsPerSync = 3;
    private const int MaxSyncSpins = 1_000_000;

    private static readonly string[] Sessions = ["s0", "s1", "s2"];
    private static readonly TimeSpan ClockStep = TimeSpan.FromMilliseconds(100);

    private readonly ITestOutputHelper _output;

    public ThreadSafetyTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task StartAndRelease_ManyThreadsWithAdvancingClock_EveryRunEndsExactlyOnceAndNothingIsLeft()
    {
        // Short deadlines, so that runs held for a few iterations time out and get evicted concurrently with
        // starts and releases on the worker threads.
        var options = new RunSupervisorOptions
        {
            RunTimeout = TimeSpan.FromSeconds(1),
            GracePeriod = TimeSpan.FromSeconds(1),
        };
        using var f = new RegistryFixture(options);
        ActiveRunRegistry registry = f.Registry;
        var endedCount = new ConcurrentDictionary<long, int>();
        var endedReason = new ConcurrentDictionary<long, RunEndReason>();
        registry.RunEnded += (_, e) =>
        {
            endedCount.AddOrUpdate(e.RunId, 1, static (_, count) => count + 1);
            endedReason[e.RunId] = e.Reason;
        };

        using var barrier = new Barrier(Workers + 1);
        int workersRunning = Workers;
        long clockSteps = 0;
        int busyRefusals = 0;
        var startedPerWorker = new List<RunHandle>[Workers];
        var heldPerWorker = new List<RunHandle>[Workers];

        void Work(int worker)
        {
            var random = new Random(1000 + worker);
            var started = new List<RunHandle>();
            var held = new List<RunHandle>();

            // Half the starts use the registry's 1 s / 1 s; the others a timeout of one to three clock steps and
            // a grace period of zero (abort evicts at once), half a step or one step.
            RunStartOptions? Overrides(bool supersede) => random.Next(2) == 0
                ? (supersede ? new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede } : null)
                : new RunStartOptions
                {
                    Timeout = ClockStep * random.Next(1, 4),
                    GracePeriod = ClockStep * (random.Next(3) * 0.5),
                    WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject,
                };

            void Keep(RunHandle run)
            {
                started.Add(run);
                held.Add(run);
            }

            void ReleaseAt(int index, bool abortFirst)
            {
                RunHandle run = held[index];
                held.RemoveAt(index);
                if (abortFirst)
                {
                    run.Abort("thread-safety test");
                }

                run.Dispose();
            }

            try
            {
                barrier.SignalAndWait();
                for (int i = 0; i < IterationsPerWorker; i++)
                {
                    string session = Sessions[random.Next(Sessions.Length)];
                    switch (random.Next(9))
                    {
                        case 0:
                            try
                            {
                                Keep(registry.Start(session, Overrides(supersede: false)));
                            }
                            catch (SessionBusyException)
                            {
                                Interlocked.Increment(ref busyRefusals);
                            }

                            break;
                        case 1:
                            if (registry.TryStart(session, out RunHandle? tried, Overrides(supersede: false)))
                            {
                                Keep(tried);
                            }

                            break;
                        case 2:
                            Keep(registry.Start(session, Overrides(supersede: true)));
                            break;
                        case 3:
                            registry.TryStart(session, out RunHandle? superseding, Overrides(supersede: true)).Should().BeTrue();
                            Keep(superseding!);
                            break;
                        case 4 or 5 when held.Count > 0:
                            ReleaseAt(random.Next(held.Count), abortFirst: false);
                            break;
                        case 6 when held.Count > 0:
                            ReleaseAt(random.Next(held.Count), abortFirst: true);
                            break;
                        case 7 when held.Count > 0:
                            // Abort now, release later: the grace period may run out in between.
                            held[random.Next(held.Count)].Abort("thread-safety test");
                            break;
                        case 8:
                            // Abort by session id, sometimes fenced with a run id that may or may not be current.
                            long? expected = held.Count > 0 && random.Next(2) == 0 ? held[random.Next(held.Count)].RunId : null;
                            registry.TryAbort(session, expected);
                            break;
                        default:
                            _ = registry.IsActive(session);
                            _ = registry.TryGetRun(session, out _);
                            _ = registry.GetActiveRuns();
                            break;
                    }

                    if (held.Count > MaxHeldPerWorker)
                    {
                        ReleaseAt(0, abortFirst: false);
                    }

                    if (i % ClockSyncInterval == 0)
                    {
                        // Without this the workers can finish thousands of iterations between two clock steps on
                        // this 2-core machine, and no run would ever reach its deadline during the churn.
                        long target = Interlocked.Read(ref clockSteps) + ClockStepsPerSync;
                        for (int spin = 0; spin < MaxSyncSpins && Interlocked.Read(ref clockSteps) < target; spin++)
                        {
                            Thread.Yield();
                        }
                    }
                }

                // Leave a run current on every session (workers 0..3 cover s0, s1, s2, s0), so the final clock
                // advance has something to force-evict.
                Keep(registry.Start(Sessions[worker % Sessions.Length], new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }));
            }
            finally
            {
                startedPerWorker[worker] = started;
                heldPerWorker[worker] = held;
                Interlocked.Decrement(ref workersRunning);
            }
        }

        void DriveClock()
        {
            barrier.SignalAndWait();
            for (int step = 0; step < MaxClockSteps && Volatile.Read(ref workersRunning) > 0; step++)
            {
                f.Time.Advance(ClockStep);
                Interlocked.Increment(ref clockSteps);
                Thread.Yield();
            }
        }

        Task[] threads =
        [
            .. Enumerable.Range(0, Workers).Select(w => Task.Factory.StartNew(() => Work(w), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)),
            Task.Factory.StartNew(DriveClock, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default),
        ];

        // A hang guard for a deadlock in the code under test; the work itself takes well under a second.
        await Task.WhenAll(threads).WaitAsync(TimeSpan.FromSeconds(30));

        List<RunHandle> all = [.. startedPerWorker.SelectMany(s => s)];
        Dictionary<RunEndReason, int> reasonsDuringChurn = endedReason.Values.GroupBy(r => r).ToDictionary(g => g.Key, g => g.Count());

        // Past every deadline and grace period, in steps as a real clock would go: whatever is still in the
        // registry is timed out and evicted. Then every handle is released (mostly stale releases by now).
        for (int step = 0; step < 30; step++)
        {
            f.Time.Advance(ClockStep);
        }

        foreach (RunHandle run in heldPerWorker.SelectMany(h => h))
        {
            run.Dispose();
        }

        f.Time.Advance(TimeSpan.FromMinutes(1));

        _output.WriteLine($"runs started: {all.Count}, busy refusals: {busyRefusals}, fake time advanced to {f.Time.GetUtcNow():O}");
        _output.WriteLine("ended during churn: " + string.Join(", ", reasonsDuringChurn.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}")));
        _output.WriteLine("ended in total: " + string.Join(", ", endedReason.Values.GroupBy(r => r).OrderBy(g => g.Key).Select(g => $"{g.Key}={g.Count()}")));

        // Nothing is left.
        registry.ActiveCount.Should().Be(0);
        registry.GetActiveRuns().Should().BeEmpty();
        Sessions.Should().OnlyContain(s => !registry.IsActive(s));
        registry.AbandonedCount.Should().Be(0, "every abandoned run's handle was disposed at the end");
        registry.GetAbandonedRuns().Should().BeEmpty();

        // Every run got a distinct id and ended exactly once. (Sets and plain loops: FluentAssertions'
        // equivalency on thousands of items is quadratic and would dominate the test's run time.)
        all.Should().NotBeEmpty();
        var startedIds = all.Select(r => r.RunId).ToHashSet();
        startedIds.Should().HaveCount(all.Count, "run ids are unique");
        startedIds.Where(id => !endedCount.ContainsKey(id)).Should().BeEmpty("every started run raises RunEnded");
        endedCount.Keys.Where(id => !startedIds.Contains(id)).Should().BeEmpty("only started runs raise RunEnded");
        endedCount.Where(p => p.Value != 1).Select(p => p.Key).Should().BeEmpty("RunEnded is raised exactly once per run");
        f.Ended.Should().HaveCount(all.Count);
        f.Ended.Where(e => e.StillRegistered).Select(e => e.Args.RunId)
            .Should().BeEmpty("RunEnded is raised only after the run's entry is gone");

        // Completion completed (synchronously, before the call that ended the run returned) with the reason
        // RunEnded reported, and the handle's status agrees.
        all.Where(r => !r.Completion.IsCompleted).Select(r => r.RunId).Should().BeEmpty();
        var inconsistent = new List<string>();
        foreach (RunHandle run in all)
        {
            RunEndReason reason = await run.Completion;
            RunStatus expectedStatus = reason == RunEndReason.ForceEvicted ? RunStatus.Evicted : RunStatus.Ended;
            if (reason != endedReason[run.RunId] || run.Status != expectedStatus || run.IsCurrent)
            {
                inconsistent.Add($"run {run.RunId}: Completion {reason}, RunEnded {endedReason[run.RunId]}, Status {run.Status}, IsCurrent {run.IsCurrent}");
            }
        }

        inconsistent.Should().BeEmpty();

        // The churn really exercised the interesting paths (not a vacuous pass).
        reasonsDuringChurn.Should().ContainKeys(RunEndReason.Completed, RunEndReason.Superseded, RunEndReason.Aborted);
        reasonsDuringChurn.Keys.Should().Contain(
            r => r == RunEndReason.TimedOut || r == RunEndReason.ForceEvicted,
            "the clock ran deadlines and grace periods out while runs were being started and released");
        endedReason.Values.Should().Contain(RunEndReason.ForceEvicted);
    }
}
