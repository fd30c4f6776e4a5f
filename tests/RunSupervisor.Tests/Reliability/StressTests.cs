using Xunit.Abstractions;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The seeded randomized stress on a <see cref="FakeTimeProvider"/>. Four workers perform random
/// Start / TryStart / Supersede / Dispose / DisposeAsync / TryAbort (right and wrong run id) / TryExtendDeadline /
/// Attach (complete, fault, honour the token, never) / WaitForRunEndAsync / DrainAsync / policy Resolve / RunAsync
/// calls over four session ids, and the admission and liveness ones: StartAsync that waits (WhenBusy = Wait, with and
/// without its own queue timeout, or for a slot in a capped lane or under the global cap), cancelled by its caller
/// while it waits, background starts and the foreground starts that preempt them, progress reports and idle timeouts;
/// meanwhile a clock thread advances the fake clock through deadlines, idle instants, queue timeouts and grace periods.
/// The model is checked after every round and at the end (see <see cref="StressHarness"/>).
/// </summary>
/// <remarks>
/// Re-run a failure with its seed: <c>STRESS_SEED=&lt;seed&gt; dotnet test --filter FullyQualifiedName~StressTests</c>.
/// Run a longer workout with <c>STRESS_OPS=1000000</c>.
/// </remarks>
public sealed class StressTests
{
    /// <summary>The CI default: at least 200,000 operations (well under a minute on two cores).</summary>
    public const long DefaultOperations = 200_000;

    private readonly ITestOutputHelper _output;

    public StressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void RandomOperations_FourWorkersAndAdvancingFakeClock_ModelInvariantsHoldEveryRoundAndAtTheEnd()
    {
        int seed = StressSettings.SeedFromEnvironment();
        long operations = StressSettings.OperationsFromEnvironment(DefaultOperations);
        // Short rounds: the checks that need the registry still (no start waits past its queue timeout or while its
        // session and a slot are free, the queue counts agree) only see the starts waiting at a round's end, and a
        // start waits about a second of fake time; a round's check costs far less than its operations.
        var settings = new StressSettings(seed, operations, Workers: 4, OperationsPerRound: 250, RealTime: false);
        _output.WriteLine($"stress seed {seed} ({StressSettings.SeedVariable}={seed} replays it), {operations:N0} operations");

        StressReport report = StressHarness.RunWithSeedOnFailure(settings);

        _output.WriteLine(report.ToString());
        report.Operations.Should().Be(operations, "every requested operation was performed");
        // A share only: the lane caps and the global cap refuse or queue many starts (most with a global cap of 2).
        report.RunsStarted.Should().BeGreaterThan(operations / 30, "a useful share of the operations started runs (seed {0})", seed);
        // TimedOut (released between deadline and eviction) is reached too, but only a few dozen times per 200,000
        // operations, so it is reported rather than required.
        report.EndReasons.Keys.Should().Contain(
            [RunEndReason.Completed, RunEndReason.Faulted, RunEndReason.Aborted, RunEndReason.Superseded, RunEndReason.ForceEvicted],
            "the workout reaches the common ways a run can end (seed {0})", seed);
        report.HeartbeatsOwed.Should().BeGreaterThan(0, "dropped heartbeats were owed back (seed {0})", seed);
        foreach (string reached in (string[])["queued", "admitted after waiting", "queue timeouts", "cancelled while waiting", "preempted", "progress reports", "lane order judgements"])
        {
            report.Count(reached).Should().BeGreaterThan(0, "the workout reaches '{0}' (seed {1})", reached, seed);
        }

        (report.Count("stalled") + report.Count("evicted after stalling")).Should().BeGreaterThan(0, "runs with an idle timeout stalled (seed {0})", seed);
    }
}
