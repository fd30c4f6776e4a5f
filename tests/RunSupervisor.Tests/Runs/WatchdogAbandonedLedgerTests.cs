using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// The abandoned ledger: a run that left the registry while its provider was still pending is remembered (bounded
/// by <see cref="RunSupervisorOptions.MaxAbandonedRuns"/>) until the provider settles, and its late fault is observed.
/// </summary>
public sealed class WatchdogAbandonedLedgerTests
{
    private const string Session = "s1";

    private static TimeSpan Timeout => RegistryFixture.Timeout;

    private static TimeSpan Grace => RegistryFixture.Grace;

    [Fact]
    public void GetAbandonedRuns_EvictedRunWithPendingTask_ListsIt()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);
        f.Registry.AbandonedCount.Should().Be(0);

        f.Time.Advance(Timeout + Grace);

        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle()
            .Which.Should().Be(new AbandonedRunInfo(Session, run.RunId, t0, t0 + Timeout + Grace));
        f.Registry.IsActive(Session).Should().BeFalse("abandoned is out of the registry");
        run.IsCurrent.Should().BeFalse();

        // It stays listed however long the provider hangs.
        f.Time.Advance(TimeSpan.FromDays(1));
        f.Registry.AbandonedCount.Should().Be(1);
    }

    [Theory]
    [InlineData("complete", "RanToCompletion")]
    [InlineData("fault", "Faulted")]
    [InlineData("cancel", "Canceled")]
    public async Task AbandonedRun_ProviderSettlesLater_LeavesLedgerAndLogsLateness(string outcome, string loggedOutcome)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(Timeout + Grace);
        RunHandle next = f.Registry.Start(Session);
        f.Time.Advance(TimeSpan.FromMinutes(7));
        var failure = new InvalidOperationException("the provider finally gave up");

        switch (outcome)
        {
            case "complete":
                provider.SetResult();
                break;
            case "fault":
                provider.SetException(failure);
                break;
            default:
                provider.SetCanceled();
                break;
        }

        f.Registry.AbandonedCount.Should().Be(0);
        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        var settled = f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle().Subject;
        settled.GetStructuredStateValue("SessionId").Should().Be(Session);
        settled.GetStructuredStateValue("RunId").Should().Be(Invariant(run.RunId));
        settled.GetStructuredStateValue("Outcome").Should().Be(loggedOutcome);
        settled.GetStructuredStateValue("Lateness").Should().Be(Invariant(TimeSpan.FromMinutes(7)));
        if (outcome == "fault")
        {
            CarriesException(settled.Exception, failure).Should().BeTrue("the late fault is logged with the record");
        }

        // Settling late ends nothing a second time and does not touch the session's new run.
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.EndedFor(run.RunId).Should().ContainSingle();
        next.IsCurrent.Should().BeTrue();
        next.Status.Should().Be(RunStatus.Running);
    }

    [Theory]
    [InlineData("evicted")]
    [InlineData("superseded")]
    [InlineData("forgotten")]
    public void AbandonedRun_ProviderFaultsLater_ExceptionIsObserved(string howAbandoned)
    {
        using var probe = new UnobservedTaskExceptionProbe();
        using var f = CreateFixture(maxAbandonedRuns: 1);
        string marker = $"abandoned provider failure {Guid.NewGuid()}";
        string control = $"control failure {Guid.NewGuid()}";

        AbandonThenFault(f, howAbandoned, marker);
        UnobservedTaskExceptionProbe.DropUnobservedFault(control);
        UnobservedTaskExceptionProbe.CollectGarbage();

        probe.Saw(control).Should().BeTrue("the probe must see an unobserved fault, or this test proves nothing");
        probe.Saw(marker).Should().BeFalse("the registry observes an abandoned provider's exception");
    }

    [Fact]
    public void MaxAbandonedRuns_LedgerFull_ForgetsOldestWithWarning()
    {
        using var f = CreateFixture(maxAbandonedRuns: 2);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        var runs = new List<RunHandle>();
        var providers = new List<TaskCompletionSource>();
        for (int i = 0; i < 3; i++)
        {
            // Started a second apart, so they are evicted (and enter the ledger) in this order.
            var provider = new TaskCompletionSource();
            RunHandle run = f.Registry.Start($"s{i}");
            run.Attach(provider.Task);
            runs.Add(run);
            providers.Add(provider);
            f.Time.Advance(TimeSpan.FromSeconds(1));
        }

        f.Time.AdvanceTo(t0 + Timeout + Grace + TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1));

        runs.Should().OnlyContain(r => r.Status == RunStatus.Evicted);
        f.Registry.AbandonedCount.Should().Be(2);
        f.Registry.GetAbandonedRuns().Select(r => r.RunId).Should().Equal(runs[1].RunId, runs[2].RunId);
        var forgotten = f.LogsWithEvent("AbandonedRunForgotten").Should().ContainSingle().Subject;
        forgotten.Level.Should().Be(LogLevel.Warning);
        forgotten.GetStructuredStateValue("RunId").Should().Be(Invariant(runs[0].RunId));
        forgotten.GetStructuredStateValue("SessionId").Should().Be("s0");
        forgotten.GetStructuredStateValue("MaxAbandonedRuns").Should().Be("2");

        // The forgotten run settling later changes nothing; a listed one settling leaves the ledger.
        providers[0].SetResult();
        f.Registry.AbandonedCount.Should().Be(2);
        f.LogsFor("AbandonedRunSettled", runs[0].RunId).Should().BeEmpty();
        providers[1].SetResult();
        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(runs[2].RunId);
    }

    [Fact]
    public void AbandonedRun_WithoutAttachedTask_StaysUntilHandleDisposed()
    {
        // Documented design: with no task attached, the owner's late release is the only sign the run settled.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(Timeout + Grace);
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(run.RunId);

        f.Time.Advance(TimeSpan.FromDays(1));
        f.Registry.AbandonedCount.Should().Be(1);

        run.Dispose();

        f.Registry.AbandonedCount.Should().Be(0);
        var settled = f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle().Subject;
        settled.GetStructuredStateValue("Outcome").Should().Be("released");
        settled.GetStructuredStateValue("Lateness").Should().Be(Invariant(TimeSpan.FromDays(1)));
        f.LogsFor("StaleReleaseIgnored", run.RunId).Should().ContainSingle().Which.Level.Should().Be(LogLevel.Debug);

        run.Dispose();
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle("a second release settles nothing");
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void AbandonedRun_WithPendingAttachedTask_LateDisposeDoesNotClearLedger()
    {
        // With a task attached, the task is the evidence: the owner's release alone does not settle it.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(Timeout + Grace);

        run.Dispose();
        f.Registry.AbandonedCount.Should().Be(1);

        provider.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle()
            .Which.GetStructuredStateValue("Outcome").Should().Be("RanToCompletion");
    }

    /// <summary>
    /// Gets a run abandoned with a pending provider, then faults the provider. Not inlined and returning nothing,
    /// so no reference to the task or the handle survives in the caller's frame when it collects garbage.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AbandonThenFault(RegistryFixture f, string howAbandoned, string message)
    {
        var provider = new TaskCompletionSource();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(provider.Task);
        switch (howAbandoned)
        {
            case "evicted":
                f.Time.Advance(Timeout + Grace);
                break;
            case "superseded":
                f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).Dispose();
                break;
            case "forgotten":
                // The fixture's ledger holds one run: a second eviction pushes this one out.
                f.Time.Advance(Timeout + Grace);
                f.Registry.Start("other").Attach(new TaskCompletionSource().Task);
                f.Time.Advance(Timeout + Grace);
                f.LogsFor("AbandonedRunForgotten", run.RunId).Should().ContainSingle();
                break;
        }

        run.IsCurrent.Should().BeFalse();
        provider.SetException(new InvalidOperationException(message));
    }

    [Fact]
    public void Ledger_ForgottenRunSettlesLater_NothingBreaksAndTheNewerEntryStays()
    {
        using var probe = new UnobservedTaskExceptionProbe();
        using var f = WatchdogTestHelpers.CreateFixture(maxAbandonedRuns: 1);
        RunHandle first = f.Registry.Start("a");
        RunHandle second = f.Registry.Start("b");
        var firstProvider = new TaskCompletionSource();
        var secondProvider = new TaskCompletionSource();
        first.Attach(firstProvider.Task);
        second.Attach(secondProvider.Task);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        f.Registry.AbandonedCount.Should().Be(1);
        long kept = f.Registry.GetAbandonedRuns().Single().RunId;
        TaskCompletionSource forgottenProvider = kept == first.RunId ? secondProvider : firstProvider;

        forgottenProvider.SetResult();
        UnobservedTaskExceptionProbe.CollectGarbage();

        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(kept);
        probe.Saw("The LinkedList node does not belong to current LinkedList.").Should().BeFalse();
        f.LogsWithEvent("AbandonedRunSettled").Should().BeEmpty("a forgotten run is not in the ledger any more");
        (kept == first.RunId ? firstProvider : secondProvider).SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
    }
}
