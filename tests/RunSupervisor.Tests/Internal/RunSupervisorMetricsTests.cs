namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The end reason names the meter and the activity source share (internal): snake_case for every defined reason,
/// and a fixed placeholder for a value outside the enum rather than an empty or made-up tag value.
/// </summary>
public sealed class RunSupervisorMetricsTests
{
    [Theory]
    [InlineData(RunEndReason.Completed, "completed")]
    [InlineData(RunEndReason.TimedOut, "timed_out")]
    [InlineData(RunEndReason.ForceEvicted, "force_evicted")]
    [InlineData(RunEndReason.LeaseLost, "lease_lost")]
    public void GetEndReasonName_DefinedReason_IsItsSnakeCaseName(RunEndReason reason, string expected)
        => RunSupervisorMetrics.GetEndReasonName(reason).Should().Be(expected);

    [Fact]
    public void GetEndReasonName_ValueOutsideTheEnum_IsUnknown()
        => RunSupervisorMetrics.GetEndReasonName((RunEndReason)99).Should().Be("unknown");
}
