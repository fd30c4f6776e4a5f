using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="SessionBusyBehavior.Supersede"/>: a start on a busy session ends the old run (Superseded) and installs
/// the new one.
/// </summary>
public sealed class ActiveRunRegistrySupersedeTests
{

    [Fact]
    public async Task Start_SupersedeOnBusySession_EndsOldRunSupersededAndInstallsNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");

        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.AbortToken.IsCancellationRequested.Should().BeTrue();
        old.Status.Should().Be(RunStatus.Ended);
        old.IsCurrent.Should().BeFalse();
        (await old.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);

        replacement.RunId.Should().BeGreaterThan(old.RunId);
        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        replacement.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.ActiveCount.Should().Be(1);
        f.Registry.TryGetRun("s1", out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(replacement.RunId);

        // Exactly one RunEnded, for the old run, raised once its entry was no longer the session's.
        (RunEndedEventArgs args, bool stillRegistered) = f.Ended.Should().ContainSingle().Subject;
        args.RunId.Should().Be(old.RunId);
        args.SessionId.Should().Be("s1");
        args.Reason.Should().Be(RunEndReason.Superseded);
        stillRegistered.Should().BeFalse();
        f.LogsWithEvent("RunSuperseded").Should().ContainSingle();
    }

    [Fact]
    public async Task TryStart_SupersedeOnBusySession_ReturnsTrueAndReplacesRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");

        bool started = f.Registry.TryStart("s1", out RunHandle? replacement, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        started.Should().BeTrue();
        replacement!.IsCurrent.Should().BeTrue();
        (await old.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public void Start_SupersedeOnIdleSession_StartsNormallyWithoutEndingAnything()
    {
        using var f = new RegistryFixture();

        RunHandle run = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        run.IsCurrent.Should().BeTrue();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunSuperseded").Should().BeEmpty();
    }

    [Fact]
    public async Task Start_Supersede_WaiterOnOldRunResolvesAndLaterWaiterWaitsForNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        Task<bool> waiterOnOld = f.Registry.WaitForRunEndAsync("s1", TestTime.WaitTimeout);
        waiterOnOld.IsCompleted.Should().BeFalse();

        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await waiterOnOld.WaitAsync(TestTime.HangGuard)).Should().BeTrue();

        // A wait started now is for the replacement, which is still running.
        Task<bool> waiterOnNew = f.Registry.WaitForRunEndAsync("s1", TestTime.WaitTimeout);
        waiterOnNew.IsCompleted.Should().BeFalse();
        replacement.Dispose();
        (await waiterOnNew.WaitAsync(TestTime.HangGuard)).Should().BeTrue();
        old.IsCurrent.Should().BeFalse();
    }

    [Fact]
    public void Start_Supersede_OldHandlesLateDisposeDoesNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.Dispose();
        old.Dispose();

        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        replacement.Completion.IsCompleted.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Registry.ActiveCount.Should().Be(1);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(old.RunId);
        f.LogsWithEvent("StaleReleaseIgnored").Should().NotBeEmpty()
            .And.OnlyContain(r => r.Level == LogLevel.Debug);
    }

    [Fact]
    public void Start_Supersede_OldRunsDeadlineAndGraceDoNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        old.Attach(new TaskCompletionSource().Task); // a provider that never settles
        f.Time.Advance(TimeSpan.FromMinutes(5));
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        // Past the old run's deadline and grace, but well before the new run's deadline.
        f.Time.Advance(RegistryFixture.Timeout - TimeSpan.FromMinutes(5) + RegistryFixture.Grace + TimeSpan.FromSeconds(1));

        replacement.IsCurrent.Should().BeTrue();
        replacement.Status.Should().Be(RunStatus.Running);
        replacement.AbortToken.IsCancellationRequested.Should().BeFalse();
        old.Status.Should().Be(RunStatus.Ended);
        f.Ended.Should().ContainSingle();
        f.LogsWithEvent("RunTimedOut").Should().BeEmpty();
        f.LogsWithEvent("RunForceEvicted").Should().BeEmpty();
    }

    [Fact]
    public void Start_SupersedeRunWithPendingProviderTask_PutsOldRunInAbandonedLedger()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(3));
        RunHandle old = f.Registry.Start("s1");
        var provider = new TaskCompletionSource();
        old.Attach(provider.Task);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        DateTimeOffset supersededAt = f.Time.GetUtcNow();

        f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        f.Registry.AbandonedCount.Should().Be(1);
        f.Registry.GetAbandonedRuns().Should().ContainSingle()
            .Which.Should().Be(new AbandonedRunInfo("s1", old.RunId, old.StartedAt, supersededAt));

        // When the abandoned provider finally settles, it leaves the ledger.
        provider.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void Start_SupersedeRunWithoutAttachedTask_KeepsItInLedgerUntilItsHandleIsDisposed()
    {
        // Without an attached task the registry cannot see the provider settle; the owner's release is the sign.
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start("s1");
        RunHandle replacement = f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        f.Registry.GetAbandonedRuns().Select(a => a.RunId).Should().Equal(old.RunId);

        old.Dispose();

        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle();
        replacement.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public void Start_SupersedeRunAlreadyReleased_NothingToSupersedeAndLedgerStaysEmpty()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start("s1");
        first.Attach(Task.CompletedTask); // settles at once: the run is released

        f.Registry.Start("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        f.Registry.GetAbandonedRuns().Should().BeEmpty();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
        f.LogsWithEvent("RunSuperseded").Should().BeEmpty();
    }

}
