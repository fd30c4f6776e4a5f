using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The run's record on its own: when the watchdog first looks at it, how the idle clock reads while paused and after
/// progress, and the lease state only a leased run carries (flags that default to off, a validity that only moves later).
/// </summary>
public sealed class RunEntryTests : IDisposable
{
    private static readonly long Idle = TimeSpan.FromSeconds(2).Ticks;
    private static readonly long StartedAt = TimeSpan.FromSeconds(7).Ticks;
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void Constructor_IdleTimeoutShorterThanTheTimeout_FirstDueAtTheIdleInstant()
    {
        RunEntry entry = Create(Idle);

        entry.DueTicks.Should().Be(StartedAt + Idle, "the first look is one idle timeout after the start");
        entry.DeadlineTicks.Should().Be(StartedAt + TimeoutTicks);
        entry.EvictAtTicks.Should().Be(StartedAt + TimeoutTicks + GraceTicks);
    }

    [Fact]
    public void Constructor_NoIdleTimeout_FirstDueAtTheDeadline()
    {
        RunEntry entry = Create(idleTicks: 0);

        entry.DueTicks.Should().Be(StartedAt + TimeoutTicks);
    }

    [Fact]
    public void PauseIdleClock_ProgressInstantKept_IdleCountsFromTheLookNotFromThePause()
    {
        RunEntry entry = Create(Idle);
        long pausedAt = StartedAt + TimeSpan.FromSeconds(5).Ticks;
        long lookAt = pausedAt + TimeSpan.FromMinutes(1).Ticks;

        entry.PauseIdleClock(pausedAt);

        entry.LastProgressTicks.Should().Be(pausedAt, "a pause is also progress at that instant");
        entry.IdleAtTicks(lookAt).Should().Be(lookAt + Idle, "while the consumer holds the turn, no silence is the provider's stall");
    }

    [Fact]
    public void ReportProgress_AfterAPause_RestartsTheIdleClockFromTheProgress()
    {
        RunEntry entry = Create(Idle);
        long progressAt = StartedAt + TimeSpan.FromSeconds(9).Ticks;
        entry.PauseIdleClock(StartedAt + TimeSpan.FromSeconds(5).Ticks);

        entry.ReportProgress(progressAt);

        entry.LastProgressTicks.Should().Be(progressAt);
        entry.IdleAtTicks(progressAt + TimeSpan.FromMinutes(1).Ticks).Should().Be(progressAt + Idle);
    }

    [Fact]
    public void LeaseFlags_RunWithoutAStore_AreOffAndValidityIsUnbounded()
    {
        RunEntry entry = Create(idleTicks: 0);

        entry.WithdrawnHeldElsewhere.Should().BeFalse();
        entry.LeaseForfeited.Should().BeFalse();
        entry.LeaseValidUntilTicks.Should().Be(long.MaxValue);
        entry.StartPublished.Should().BeTrue("a run without a store is published as it starts");
        entry.Lease.Should().BeNull();
        entry.FencingToken.Should().Be(entry.RunId, "without a lease the run id fences");
    }

    [Fact]
    public void LeaseFlags_LeasedRun_OffUntilSetThenOn()
    {
        RunEntry entry = Create(idleTicks: 0, leased: true);

        entry.WithdrawnHeldElsewhere.Should().BeFalse();
        entry.LeaseForfeited.Should().BeFalse();
        entry.StartPublished.Should().BeFalse("a leased run's start waits for its lease");

        entry.WithdrawnHeldElsewhere = true;
        entry.LeaseForfeited = true;

        entry.WithdrawnHeldElsewhere.Should().BeTrue();
        entry.LeaseForfeited.Should().BeTrue();
    }

    [Fact]
    public void LeaseValidUntilTicks_LeasedRun_OnlyEverMovesLater()
    {
        RunEntry entry = Create(idleTicks: 0, leased: true);
        entry.LeaseValidUntilTicks.Should().Be(long.MaxValue, "no renew has been confirmed yet");

        entry.LeaseValidUntilTicks = 500;
        entry.LeaseValidUntilTicks.Should().Be(500, "the first confirmed renew bounds the lease");

        entry.LeaseValidUntilTicks = 300;
        entry.LeaseValidUntilTicks.Should().Be(500, "a late answer to an older renew never shortens the lease");

        entry.LeaseValidUntilTicks = 800;
        entry.LeaseValidUntilTicks.Should().Be(800);
    }

    [Fact]
    public async Task Completion_AskedForBeforeTheEnd_CompletesWithTheReasonOnComplete()
    {
        RunEntry entry = Create(idleTicks: 0);
        Task<RunEndReason> completion = entry.Completion;
        completion.IsCompleted.Should().BeFalse();

        entry.MarkEnded(RunEndReason.Aborted, "stop", StartedAt + 1);
        entry.Complete();

        completion.IsCompletedSuccessfully.Should().BeTrue();
        (await completion).Should().Be(RunEndReason.Aborted);
        Task<RunEndReason> late = entry.Completion;
        late.IsCompletedSuccessfully.Should().BeTrue("asked for after the end, it is complete at once");
        (await late).Should().Be(RunEndReason.Aborted);
    }

    private RunEntry Create(long idleTicks, bool leased = false)
        => Entry(_registry, startedAtTicks: StartedAt, spec: Spec(idleTicks: idleTicks), leased: leased);
}
