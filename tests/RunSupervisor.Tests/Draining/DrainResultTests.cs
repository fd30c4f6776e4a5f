using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Draining;

/// <summary>
/// <see cref="DrainResult"/>: the runs in run-id order, the reason and detail only of runs that have left, the outcome
/// of a run that ends just as the drain gives up on it, and an empty (never null) list of cancelled starts.
/// </summary>
public sealed class DrainResultTests
{
    [Fact]
    public async Task DrainAsync_ManyRuns_ListsThemInRunIdOrder()
    {
        using var f = new RegistryFixture();
        var started = new List<RunHandle>();
        for (int i = 0; i < 16; i++)
        {
            started.Add(f.Registry.Start($"session-{i:D2}"));
        }

        // The registry keeps its runs by session hash; the report must not show that order.
        DrainResult result = await f.Registry.DrainAsync(TimeSpan.Zero).Guard();

        result.Runs.Select(r => r.RunId).Should().Equal(started.Select(r => r.RunId)).And.BeInAscendingOrder();
        result.StillRunning.Should().Equal(started.Select(r => r.SessionId), "the session lists are views of Runs");
        foreach (RunHandle run in started)
        {
            run.Dispose();
        }
    }

    [Fact]
    public async Task DrainAsync_RunsNotYetLeft_ReportNoReasonOrDetail()
    {
        using var f = new RegistryFixture();
        using RunHandle aborting = f.Registry.Start("aborting");
        using RunHandle running = f.Registry.Start("running");

        // Aborted with a text before the drain: aborting, not ended, when the drain reports.
        aborting.Abort("shutting down").Should().BeTrue();

        DrainResult result = await f.Registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true }).Guard();

        // The abort texts are not end details: neither run has left the registry (both are in their grace period).
        result.Runs.Should().Equal(
            new DrainedRun("aborting", aborting.RunId, Reason: null, Detail: null, DrainOutcome.StillRunning),
            new DrainedRun("running", running.RunId, Reason: null, Detail: null, DrainOutcome.Aborted));
        running.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public async Task DrainAsync_RunEndsAsTheDrainTurnsToAbortIt_ReportedAsDrained()
    {
        var clock = new ReadHookClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), clock);
        RunHandle run = registry.Start("s1");

        // The drain reads the clock when it stops waiting and again as it sets out to abort the run: the run's owner
        // releases it in between, so the abort finds nothing to abort.
        clock.OnRead(2, run.Dispose);
        DrainResult result = await registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true }).Guard();

        clock.HookRan.Should().BeTrue();
        result.Runs.Should().Equal(new DrainedRun("s1", run.RunId, RunEndReason.Completed, Detail: null, DrainOutcome.Drained));
        result.IsComplete.Should().BeTrue();
        result.StillRunning.Should().BeEmpty();
        (await run.Completion.Guard()).Should().Be(RunEndReason.Completed);
        run.AbortToken.IsCancellationRequested.Should().BeFalse("the run had ended before the drain could abort it");
    }

    [Fact]
    public void Constructor_NoCancelledStarts_ListsNoneRatherThanNull()
    {
        var runs = new[] { new DrainedRun("s1", 1, RunEndReason.Completed, Detail: null, DrainOutcome.Drained) };

        var result = new DrainResult(runs);

        result.CancelledStarts.Should().NotBeNull().And.BeEmpty();
        result.Drained.Should().Equal("s1");
    }
}
