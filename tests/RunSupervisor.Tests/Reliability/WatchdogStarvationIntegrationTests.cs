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
    private static readonly TimeSpan Bound = TimeSpan.FromMilliseconds(250);

    [Fact]
    public async Task RealTime_SixtyFourBlockingProviders_AnotherRunIsAbortedAndEvictedWithin250msOfItsInstants()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions
        {
            RunTimeout = TimeSpan.FromSeconds(30),
            GracePeriod = TimeSpan.FromMilliseconds(600),
        });
        using var release = new ManualResetEventSlim();
        var blocked = new List<Task>();
        try
        {
            // Each provider holds a pool thread for as long as the test runs: sixty-four of them on two cores.
            for (int i = 0; i < 64; i++)
            {
                blocked.Add(registry.RunAsync($"blocking-{i}", _ =>
                {
                    release.Wait(TimeSpan.FromSeconds(30));
                    return Task.CompletedTask;
                }));
            }

            var stopwatch = Stopwatch.StartNew();
            long abortedAt = 0;
            long endedAt = 0;
            using RunHandle watched = registry.Start("watched", new RunStartOptions { Timeout = TimeSpan.FromMilliseconds(300) });
            watched.AbortToken.UnsafeRegister(_ => Volatile.Write(ref abortedAt, stopwatch.ElapsedTicks), null);
            registry.RunEnded += (_, e) =>
            {
                if (e.RunId == watched.RunId)
                {
                    Volatile.Write(ref endedAt, stopwatch.ElapsedTicks);
                }
            };
            watched.Attach(new TaskCompletionSource().Task);

            // Polled by the test only, at a coarse step, on this thread: the registry itself never polls.
            while (Volatile.Read(ref endedAt) == 0 && stopwatch.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(5);
            }

            TimeSpan evicted = TimeSpan.FromTicks(Volatile.Read(ref endedAt) * TimeSpan.TicksPerSecond / Stopwatch.Frequency);
            output.WriteLine($"eviction due at 900 ms, happened at {evicted.TotalMilliseconds:F0} ms; watchdog lateness {registry.WatchdogLateness.TotalMilliseconds:F1} ms");
            watched.Status.Should().Be(RunStatus.Evicted);
            evicted.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(900)).And.BeLessThan(TimeSpan.FromMilliseconds(900) + Bound);
            registry.WatchdogLateness.Should().BeLessThan(Bound);
            watched.AbortToken.IsCancellationRequested.Should().BeTrue();
        }
        finally
        {
            release.Set();
            await Task.WhenAll(blocked).WaitAsync(TimeSpan.FromSeconds(30));
        }
    }
}
