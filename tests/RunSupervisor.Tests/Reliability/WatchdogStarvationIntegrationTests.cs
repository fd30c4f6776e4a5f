using System.Diagnostics;
using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Real time, real thread pool: providers that block their threads synchronously (what hung SDK calls do) starve the
/// pool, and the watchdog, on a thread of its own, still aborts and evicts on time. Bounds are generous against a
/// loaded two-core machine; the recorded figures are in the benchmarks' README.
/// </summary>
[Collection(RealTimeCollection.Name)]
public sealed class WatchdogStarvationIntegrationTests(ITestOutputHelper output)
{
    private const int BlockingProviders = 64;
    private const string Watched = "watched";
    private static readonly TimeSpan Bound = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan WatchedTimeout = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Grace = TimeSpan.FromMilliseconds(600);

    /// <summary>How every run of the scenario, the blocking ones and the watched one, is started.</summary>
    public enum Path
    {
        /// <summary><c>registry.RunAsync(session, provider)</c>, the provider blocking the pool thread it is invoked on.</summary>
        RunAsync,

        /// <summary><c>registry.Start(session)</c>, then <c>run.Attach(task)</c> where the task is a provider blocking a pool thread.</summary>
        StartAttach,
    }

    [Theory]
    [InlineData(Path.RunAsync)]
    [InlineData(Path.StartAttach)]
    public async Task RealTime_SixtyFourBlockingProviders_AnotherRunIsAbortedAndEvictedWithin250msOfItsInstants(Path path)
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions
        {
            RunTimeout = TimeSpan.FromSeconds(30),
            GracePeriod = Grace,
        });
        using var release = new ManualResetEventSlim();
        var blocked = new List<Task>();
        Task? watchedCall = null;
        Thread? observer = null;
        bool stopObserving = false;
        try
        {
            // Each provider holds a pool thread for as long as the test runs: sixty-four of them on two cores, so the
            // pool is starved and has a backlog of queued provider work when the watched run's instants come.
            for (int i = 0; i < BlockingProviders; i++)
            {
                blocked.Add(StartBlockingRun(registry, path, $"blocking-{i}", options: null, release, out _));
            }

            registry.ActiveCount.Should().Be(BlockingProviders);

            var stopwatch = Stopwatch.StartNew();
            long abortedAt = 0;
            long callbacksRanAt = 0;
            long endedAt = 0;
            registry.RunEnded += (_, e) =>
            {
                // Raised on the thread that ended the run, the watchdog's for an eviction: this is the eviction instant.
                if (e.SessionId == Watched)
                {
                    Volatile.Write(ref endedAt, stopwatch.ElapsedTicks);
                }
            };

            watchedCall = StartBlockingRun(registry, path, Watched, new RunStartOptions { Timeout = WatchedTimeout }, release, out RunHandle? watchedHandle);
            watchedHandle?.AbortToken.UnsafeRegister(_ => Volatile.Write(ref callbacksRanAt, stopwatch.ElapsedTicks), null);

            // The abort is observed from a thread of the test's own (the pool is starved, so no pool thread could observe
            // it on time): the first moment the run reads as aborting, which is when its abort token reads cancelled.
            // Callbacks registered on the token are not the measure: when the registry aborts a run they run on the
            // thread pool, by design, so in a starved pool they wait their turn (printed, not asserted).
            observer = new Thread(() =>
            {
                while (!Volatile.Read(ref stopObserving) && Volatile.Read(ref abortedAt) == 0)
                {
                    if (registry.TryGetRun(Watched, out RunInfo? info) && info.Status != RunStatus.Running)
                    {
                        Volatile.Write(ref abortedAt, stopwatch.ElapsedTicks);
                    }

                    Thread.Sleep(1);
                }
            })
            {
                IsBackground = true,
                Name = "starvation test observer",
            };
            observer.Start();

            // Polled by the test only, at a coarse step, on this thread: the registry itself never polls.
            while (Volatile.Read(ref endedAt) == 0 && stopwatch.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(5);
            }

            Volatile.Write(ref stopObserving, true);
            observer.Join(TestTime.HangGuard).Should().BeTrue();

            TimeSpan aborted = ToTimeSpan(Volatile.Read(ref abortedAt));
            TimeSpan evicted = ToTimeSpan(Volatile.Read(ref endedAt));
            TimeSpan abortDue = WatchedTimeout;
            TimeSpan evictionDue = WatchedTimeout + Grace;
            string callbacks = watchedHandle is null
                ? "n/a (RunAsync: the provider holds the token)"
                : Volatile.Read(ref callbacksRanAt) == 0 ? "not yet (queued behind the blocked providers)" : $"{ToTimeSpan(Volatile.Read(ref callbacksRanAt)).TotalMilliseconds:F0} ms";
            output.WriteLine(
                $"{path}: abort due at {abortDue.TotalMilliseconds:F0} ms, seen at {aborted.TotalMilliseconds:F1} ms (late {(aborted - abortDue).TotalMilliseconds:F1} ms); " +
                $"eviction due at {evictionDue.TotalMilliseconds:F0} ms, happened at {evicted.TotalMilliseconds:F1} ms (late {(evicted - evictionDue).TotalMilliseconds:F1} ms); " +
                $"watchdog lateness {registry.WatchdogLateness.TotalMilliseconds:F1} ms; abort-token callbacks ran at {callbacks}");

            abortedAt.Should().NotBe(0, "the run must be seen aborting before it is evicted");
            // Measured on the high-resolution clock; the registry counts on the system tick, so "on time" may be a tick early.
            aborted.Should().BeGreaterThanOrEqualTo(abortDue - TestTime.SystemTickResolution, "never before the deadline").And.BeLessThan(abortDue + Bound, "the deadline's abort is on time while the pool is starved");
            evicted.Should().BeGreaterThanOrEqualTo(evictionDue - TestTime.SystemTickResolution, "never before deadline + grace").And.BeLessThan(evictionDue + Bound, "the eviction is on time while the pool is starved");
            registry.WatchdogLateness.Should().BeLessThan(Bound);
            registry.IsActive(Watched).Should().BeFalse("eviction frees the session");
            if (watchedHandle is not null)
            {
                watchedHandle.Status.Should().Be(RunStatus.Evicted);
                watchedHandle.AbortToken.IsCancellationRequested.Should().BeTrue();
            }
        }
        finally
        {
            Volatile.Write(ref stopObserving, true);
            observer?.Join(TestTime.HangGuard);
            release.Set();
            await Task.WhenAll(blocked).WaitAsync(TimeSpan.FromSeconds(30));
        }

        if (path == Path.RunAsync)
        {
            // The caller of an evicted RunAsync learns it once the starved pool runs its continuation; what it learns is fixed.
            await FluentActions.Awaiting(() => watchedCall!.WaitAsync(TimeSpan.FromSeconds(30))).Should().ThrowAsync<RunEvictedException>();
        }
        else
        {
            await watchedCall!.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static TimeSpan ToTimeSpan(long stopwatchTicks) => TimeSpan.FromTicks(stopwatchTicks * TimeSpan.TicksPerSecond / Stopwatch.Frequency);

    /// <summary>
    /// Starts a run whose provider blocks a pool thread until <paramref name="release"/> is set. Returns the task to wait
    /// for at the end: the RunAsync call, or the attached provider task; <paramref name="handle"/> is the run's handle on
    /// the Start + Attach path.
    /// </summary>
    private static Task StartBlockingRun(ActiveRunRegistry registry, Path path, string sessionId, RunStartOptions? options, ManualResetEventSlim release, out RunHandle? handle)
    {
        if (path == Path.RunAsync)
        {
            handle = null;
            return registry.RunAsync(sessionId, _ =>
            {
                release.Wait(TimeSpan.FromSeconds(30));
                return Task.CompletedTask;
            }, options);
        }

        handle = registry.Start(sessionId, options);

        // The host calls its provider, which blocks the pool thread it runs on (or waits for one in the starved pool's queue).
        Task provider = Task.Run(() => release.Wait(TimeSpan.FromSeconds(30)));
        handle.Attach(provider);
        return provider;
    }
}
