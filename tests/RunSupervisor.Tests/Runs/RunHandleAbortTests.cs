using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="RunHandle.Abort(string?)"/>: the abort token, the Aborting status, the grace period and the eviction
/// that follows when the provider ignores the token.
/// </summary>
public sealed class RunHandleAbortTests
{
    private const string Session = "s1";

    [Fact]
    public void Abort_RunningRun_CancelsTokenAndStartsAborting()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort("user pressed stop").Should().BeTrue();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
        run.IsCurrent.Should().BeTrue("an aborted run keeps its session until it settles or its grace elapses");
        f.Registry.IsActive(Session).Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.Status.Should().Be(RunStatus.Aborting);
        run.Completion.IsCompleted.Should().BeFalse();
        f.Ended.Should().BeEmpty();
        var logged = f.LogsFor("RunAborted", run.RunId).Should().ContainSingle().Subject;
        logged.Level.Should().Be(LogLevel.Information);
        logged.GetStructuredStateValue("AbortReason").Should().Be("user pressed stop");
    }

    [Fact]
    public void Abort_Twice_SecondReturnsFalse()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Abort().Should().BeTrue();
        run.Abort().Should().BeFalse();

        f.LogsFor("RunAborted", run.RunId).Should().ContainSingle();
    }

    [Fact]
    public async Task Abort_ThenDispose_EndsAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Abort();
        f.Time.Advance(TimeSpan.FromSeconds(5));

        run.Dispose();

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public async Task Abort_AfterTimeout_ReturnsFalseAndReasonStaysTimedOut()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        f.Time.Advance(RegistryFixture.Timeout);

        run.Abort().Should().BeFalse("the watchdog already aborted it");
        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.TimedOut);
        f.LogsFor("RunAborted", run.RunId).Should().BeEmpty();
    }

    [Fact]
    public async Task Abort_AfterRelease_ReturnsFalseAndLeavesTokenAlone()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Dispose();

        run.Abort().Should().BeFalse();

        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Abort_StaleHandle_DoesNotTouchNewRun(bool superseded)
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        RunHandle b;
        if (superseded)
        {
            b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        }
        else
        {
            a.Dispose();
            b = f.Registry.Start(Session);
        }

        a.Abort().Should().BeFalse();

        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
        f.LogsFor("RunAborted", b.RunId).Should().BeEmpty();
    }

    [Fact]
    public void Abort_ZeroGrace_EvictsWithinTheCallWithoutWaitingForATimer()
    {
        var time = new HandDrivenClock();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { GracePeriod = TimeSpan.Zero }, time);
        RunHandle run = registry.Start(Session);

        run.Abort().Should().BeTrue();

        registry.IsActive(Session).Should().BeFalse("a zero grace period evicts at once, in the abort itself");
        run.Status.Should().Be(RunStatus.Evicted);
    }
}
