using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Every end says its reason and its cause: <see cref="RunEndedEventArgs.Detail"/>, <see cref="RunEndedEventArgs.EndedAt"/>,
/// <see cref="RunHandle.EndedAt"/> and <see cref="RunHandle.FencingToken"/>, the same on the event, the handle, the log
/// line and the drain's report.
/// </summary>
public sealed class RunEndDetailTests
{
    private const string Session = "s1";

    [Fact]
    public void Release_RunningRun_CompletedWithoutDetail()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.Completed);
        ended.Detail.Should().BeNull();
    }

    [Fact]
    public void Abort_WithReasonThenRelease_DetailIsTheCallersText()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort("user pressed stop");
        run.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.Aborted);
        ended.Detail.Should().Be("user pressed stop");
    }

    [Fact]
    public void TryAbort_WithoutReason_DetailNamesTheCall()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        f.Registry.TryAbort(Session).Should().BeTrue();
        run.Dispose();

        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Be("ActiveRunRegistry.TryAbort was called");
    }

    [Fact]
    public void Deadline_ProviderSettlesWithinGrace_TimedOutWithTheWatchdogsCause()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(RegistryFixture.Timeout);

        run.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.TimedOut);
        ended.Detail.Should().Be("deadline passed after 00:10:00");
    }

    [Fact]
    public void Abort_AfterTheWatchdogAborted_ChangesNothingAndTheWatchdogsCauseStands()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(RegistryFixture.Timeout);

        run.Abort("user pressed stop").Should().BeFalse("the run is already aborting");
        f.Registry.TryAbort(Session, reason: "operator").Should().BeFalse();
        run.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.TimedOut, "a watchdog abort is never reported as a caller's abort");
        ended.Detail.Should().Be("deadline passed after 00:10:00");
    }

    [Fact]
    public void Abort_ThenTheWatchdogEvicts_ForceEvictedDetailKeepsTheCallersCause()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        run.Abort("user pressed stop");
        f.Time.Advance(RegistryFixture.Grace);

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Detail.Should().Be("evicted: the provider did not settle within 00:00:30 of the abort (user pressed stop)");
    }

    [Fact]
    public void Eviction_HungProvider_DetailSaysTheGraceAndTheDeadline()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.Detail.Should().Be("evicted: the provider did not settle within 00:00:30 of the abort (deadline passed after 00:10:00)");
        f.LogsWithEvent("RunForceEvicted").Should().ContainSingle().Which.Message.Should().Contain(ended.Detail);
    }

    [Fact]
    public void Supersede_OldRun_DetailNamesTheNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start(Session);

        using RunHandle replacement = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.RunId.Should().Be(old.RunId);
        ended.Reason.Should().Be(RunEndReason.Superseded);
        ended.Detail.Should().Be($"superseded by run {replacement.RunId}");
    }

    [Fact]
    public void Attach_ProviderFaults_DetailNamesTheException()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromException(new TimeoutException("socket read timed out")));

        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Be("the provider faulted: TimeoutException: socket read timed out");
    }

    [Fact]
    public void Attach_ProviderCancelsItself_AbortedWithItsOwnCause()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromCanceled(new CancellationToken(canceled: true)));

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.Aborted);
        ended.Detail.Should().Be("the provider's task was cancelled");
    }

    [Fact]
    public void Dispose_Registry_RunsEndAbortedWithTheDisposalAsCause()
    {
        var f = new RegistryFixture();
        f.Registry.Start(Session);

        f.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.Reason.Should().Be(RunEndReason.Aborted);
        ended.Detail.Should().Be("the registry was disposed");
    }

    [Fact]
    public void EndedAt_WhileRunningAndAfterTheEnd_NullThenTheEventsInstant()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.EndedAt.Should().BeNull();
        f.Time.Advance(TimeSpan.FromSeconds(42));

        run.Dispose();

        RunEndedEventArgs ended = f.Ended.Should().ContainSingle().Subject.Args;
        ended.EndedAt.Should().Be(run.StartedAt + TimeSpan.FromSeconds(42));
        run.EndedAt.Should().Be(ended.EndedAt);
        (ended.EndedAt - run.StartedAt).Should().Be(ended.Duration);
    }

    [Fact]
    public void FencingToken_WithoutALeaseStore_EqualsTheRunIdEverywhere()
    {
        using var f = new RegistryFixture();
        RunHandle first = f.Registry.Start(Session);
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        first.Dispose();
        using RunHandle second = f.Registry.Start(Session);

        first.FencingToken.Should().Be(first.RunId);
        info!.FencingToken.Should().Be(first.RunId);
        f.Ended.Should().ContainSingle().Which.Args.FencingToken.Should().Be(first.RunId);
        second.FencingToken.Should().BeGreaterThan(first.FencingToken, "a session's newer run always carries a larger token");
    }

    [Fact]
    public void RunEndedLog_EveryEnd_CarriesTheDetail()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort("user pressed stop");
        run.Dispose();

        f.LogsWithEvent("RunEnded").Should().ContainSingle().Which.Message.Should().Contain("user pressed stop");
    }

    [Fact]
    public void RunEndedLog_EndWithoutDetail_SaysCompleted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Dispose();

        f.LogsWithEvent("RunEnded").Should().ContainSingle().Which.Message.Should().EndWith("(completed).");
    }
}
