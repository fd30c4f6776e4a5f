using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Releasing a run through its handle: <c>Dispose</c> and <c>DisposeAsync</c> end it Completed, idempotently, and a
/// stale handle (its run already ended or replaced) never touches the session's newer run.
/// The fixture's registry runs with a 10 min timeout, 30 s grace and 1 h cap.
/// </summary>
public sealed class RunHandleReleaseTests
{
    private const string Session = "s1";

    // ---- Releasing ------------------------------------------------------------------------

    [Fact]
    public async Task Dispose_ActiveRun_ReleasesSessionAndCompletesWithCompleted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        Task<bool> waiter = f.Registry.WaitForRunEndAsync(Session, Timeout.InfiniteTimeSpan);

        // What a RunEnded subscriber sees: the entry already gone, Completion not yet completed.
        bool? activeDuringEvent = null;
        bool? currentDuringEvent = null;
        bool? completionDoneDuringEvent = null;
        f.Registry.RunEnded += (_, _) =>
        {
            activeDuringEvent = f.Registry.IsActive(Session);
            currentDuringEvent = run.IsCurrent;
            completionDoneDuringEvent = run.Completion.IsCompleted;
        };

        run.Dispose();

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        run.Status.Should().Be(RunStatus.Ended);
        run.IsCurrent.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        (await waiter.WaitAsync(TestTime.HangGuard)).Should().BeTrue();

        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.RunId.Should().Be(run.RunId);
        ended.Args.SessionId.Should().Be(Session);
        ended.Args.Reason.Should().Be(RunEndReason.Completed);
        ended.StillRegistered.Should().BeFalse();
        activeDuringEvent.Should().BeFalse();
        currentDuringEvent.Should().BeFalse();
        completionDoneDuringEvent.Should().BeFalse("RunEnded is raised before Completion completes");
    }

    [Fact]
    public async Task DisposeAsync_ActiveRun_ReleasesSessionWithCompleted()
    {
        using var f = new RegistryFixture();
        RunHandle run;
        await using (run = f.Registry.Start(Session))
        {
            f.Registry.IsActive(Session).Should().BeTrue();
        }

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Dispose_Twice_SecondReleaseIsNoOp(bool firstAsync, bool secondAsync)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        RunHandle other = f.Registry.Start("s2");

        await Release(run, firstAsync);
        await Release(run, secondAsync);

        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(run.RunId);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        run.Status.Should().Be(RunStatus.Ended);
        f.Registry.ActiveCount.Should().Be(1, "the other session's run is untouched by the repeated release");
        other.IsCurrent.Should().BeTrue();
        f.Logs.Should().NotContain(r => r.Level >= LogLevel.Warning);
    }

    // ---- Stale handle ---------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Dispose_StaleHandleAfterNewRunStarted_NewRunStaysCurrentAndDebugLogged(bool useDisposeAsync)
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);
        int logsBefore = f.Logs.Count;

        // The late finally of run A: it names A, so it must not remove B.
        await Release(a, useDisposeAsync);

        f.Registry.IsActive(Session).Should().BeTrue();
        f.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();
        info!.RunId.Should().Be(b.RunId);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.Completion.IsCompleted.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);

        // One record for the stale release, at Debug; nothing the stale release logs is above Debug.
        var newRecords = f.Logs.Skip(logsBefore).ToList();
        newRecords.Should().OnlyContain(r => r.Level == LogLevel.Debug);
        var stale = newRecords.Should().ContainSingle(r => r.Id.Name == "StaleReleaseIgnored").Subject;
        stale.GetStructuredStateValue("RunId").Should().Be(Invariant(a.RunId));
        stale.GetStructuredStateValue("SessionId").Should().Be(Session);
    }

    [Fact]
    public async Task Dispose_SupersededHandle_DoesNotTouchReplacement()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.Dispose();

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        f.LogsFor("StaleReleaseIgnored", a.RunId).Should().ContainSingle().Which.Level.Should().Be(LogLevel.Debug);
    }

    private static async Task Release(RunHandle run, bool useDisposeAsync)
    {
        if (useDisposeAsync)
        {
            await run.DisposeAsync();
        }
        else
        {
            run.Dispose();
        }
    }
}
