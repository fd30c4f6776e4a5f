using Xunit.Abstractions;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The bounded real-time variant: the same random workout on <see cref="TimeProvider.System"/>
/// with millisecond timeouts (20 ms, grace 10 ms), for a few seconds. Timers fire whenever the operating system
/// runs them, so only the interleaving-proof invariants are checked during the run (in the event handlers) and
/// the full model at the end.
/// </summary>
public sealed class RealTimeStressIntegrationTests
{
    private readonly ITestOutputHelper _output;

    public RealTimeStressIntegrationTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void RandomOperations_SystemClockWithMillisecondTimeouts_EveryRunEndsOnceAndNothingIsLeft()
    {
        int seed = StressSettings.SeedFromEnvironment();
        var settings = new StressSettings(seed, TotalOperations: 40_000, Workers: 4, OperationsPerRound: 2_500, RealTime: true);
        _output.WriteLine($"real-time stress seed {seed} ({StressSettings.SeedVariable}={seed} replays its operation sequences)");

        StressReport report = StressHarness.RunWithSeedOnFailure(settings);

        _output.WriteLine(report.ToString());
        report.Operations.Should().Be(settings.TotalOperations);
        report.RunsStarted.Should().BeGreaterThan(0);
        report.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "the real-time variant stays bounded");
    }
}
