using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// A force eviction of a run the watchdog has not yet aborted (a drain evicting an overdue run): the eviction is its
/// abort too, so the run's end names who evicted it and its abort token is cancelled.
/// </summary>
public sealed class TransitionForceEvictTests
{
    [Fact]
    public async Task DrainAsync_ForceEvictsAnOverdueRunTheWatchdogHasNotAborted_EndNamesTheDrain()
    {
        // A clock whose timers never fire: the run passes its deadline without the watchdog having looked at it.
        var clock = new HandDrivenClock();
        var logs = new FakeLoggerProvider();
        using var loggerFactory = new LoggerFactory([logs]);
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(10), GracePeriod = TimeSpan.FromSeconds(30) }, clock, loggerFactory);
        var ended = new List<RunEndedEventArgs>();
        registry.RunEnded += (_, e) => ended.Add(e);
        RunHandle run = registry.Start("s");
        clock.Elapse(TimeSpan.FromMinutes(11));
        run.Status.Should().Be(RunStatus.Running);

        DrainResult result = await registry.DrainAsync(TimeSpan.Zero, new DrainOptions { ForceEvictOverdue = true }).WaitAsync(TestTime.HangGuard);

        result.Evicted.Should().Equal("s");
        RunEndedEventArgs end = ended.Should().ContainSingle().Subject;
        end.Reason.Should().Be(RunEndReason.ForceEvicted);
        end.Detail.Should().Contain("the drain force-evicted it past its deadline");
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
    }
}
