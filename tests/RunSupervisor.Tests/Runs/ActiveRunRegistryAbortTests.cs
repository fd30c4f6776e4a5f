using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Aborting a run through the registry: <c>TryAbort</c> by session id, fenced by the run id the caller saw,
/// the default abort reason of every route, and an abort-token callback that throws.
/// </summary>
public sealed class ActiveRunRegistryAbortTests
{
    private const string Session = "s1";


    [Fact]
    public void TryAbort_ExpectedRunIdOfEarlierRun_DoesNothingToCurrentRun()
    {
        // The race the fencing token exists for: a caller saw run A, A ended, B started; the caller's abort of A
        // must not hit B.
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("s1");
        a.Dispose();
        RunHandle b = f.Registry.Start("s1");

        bool aborted = f.Registry.TryAbort("s1", expectedRunId: a.RunId);

        aborted.Should().BeFalse();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeTrue();
        f.LogsWithEvent("RunAborted").Should().BeEmpty();

        // Nor does the watchdog treat B as aborted: nothing happens to it within a grace period.
        f.Time.Advance(RegistryFixture.Grace + TimeSpan.FromSeconds(1));
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
    }

    [Fact]
    public void TryAbort_ExpectedRunIdOfLaterRun_DoesNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryAbort("s1", expectedRunId: run.RunId + 1).Should().BeFalse();

        run.Status.Should().Be(RunStatus.Running);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public void TryAbort_ExpectedRunIdMatches_AbortsRunAndLogsReason()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        bool aborted = f.Registry.TryAbort("s1", expectedRunId: run.RunId, reason: "user pressed stop");

        aborted.Should().BeTrue();
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);

        // Aborting is not ending: the run keeps the session until it settles or its grace period runs out.
        f.Registry.IsActive("s1").Should().BeTrue();
        run.Completion.IsCompleted.Should().BeFalse();
        FakeLogRecord log = f.LogsWithEvent("RunAborted").Should().ContainSingle().Subject;
        log.Level.Should().Be(LogLevel.Information);
        log.Message.Should().Contain("user pressed stop").And.Contain("'s1'");
    }

    [Fact]
    public async Task TryAbort_ThenRelease_EndsRunWithReasonAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.TryAbort("s1", run.RunId).Should().BeTrue();

        run.Dispose();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Registry.IsActive("s1").Should().BeFalse();
    }

    [Fact]
    public void TryAbort_WithoutExpectedRunId_AbortsCurrentRun()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        f.Registry.TryAbort("s1").Should().BeTrue();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public void TryAbort_NoRunOnSession_ReturnsFalse()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("other");

        f.Registry.TryAbort("s1").Should().BeFalse();
        f.Registry.TryAbort("s1", expectedRunId: 1).Should().BeFalse();

        f.Registry.Start("s1").Dispose();
        f.Registry.TryAbort("s1").Should().BeFalse();
        f.LogsWithEvent("RunAborted").Should().BeEmpty();
    }

    [Fact]
    public void TryAbort_SecondCall_ReturnsFalseAndDoesNotRestartGracePeriod()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.TryAbort("s1", run.RunId).Should().BeTrue();
        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromSeconds(10));

        f.Registry.TryAbort("s1", run.RunId).Should().BeFalse();
        f.Registry.TryAbort("s1").Should().BeFalse();

        // The eviction instant is still one grace period after the first abort, not after the second call.
        f.Time.Advance(TimeSpan.FromSeconds(10));
        f.Registry.IsActive("s1").Should().BeFalse();
        run.Status.Should().Be(RunStatus.Evicted);
        f.LogsWithEvent("RunAborted").Should().ContainSingle();
    }

    [Fact]
    public async Task Abort_EveryRoute_LogsItsOwnDefaultReason()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b");
        RunHandle c = f.Registry.Start("c");
        using var cts = new CancellationTokenSource();
        var invoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task call = f.Registry.RunAsync("d", ct =>
        {
            invoked.SetResult();
            return HonourTokenAsync(ct);
        }, cancellationToken: cts.Token);
        await invoked.Task.Guard();

        f.Registry.TryAbort("a").Should().BeTrue();
        b.Abort().Should().BeTrue();
        await cts.CancelAsync();
        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.FromSeconds(1), new DrainOptions { AbortRemaining = true });
        f.Time.Advance(TimeSpan.FromSeconds(1));
        (await drain.Guard()).Aborted.Should().Equal("c");
        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>();

        f.LogsFor("RunAborted", a.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("ActiveRunRegistry.TryAbort was called");
        f.LogsFor("RunAborted", b.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("RunHandle.Abort was called");
        f.LogsFor("RunAborted", c.RunId).Single().GetStructuredStateValue("AbortReason").Should().Be("the drain timed out");
        f.LogsWithEvent("RunAborted").Select(r => r.GetStructuredStateValue("AbortReason")).Should().Contain("the caller's cancellation token was cancelled");
    }

    [Fact]
    public void Abort_AbortTokenCallbackThrows_LoggedAndRegistryConsistent()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.AbortToken.Register(() => throw new InvalidOperationException("provider callback failed"));

        f.Registry.TryAbort(Session).Should().BeTrue();

        f.LogsWithEvent("AbortCallbackFailed").Should().ContainSingle().Which.GetStructuredStateValue("RunId").Should().Be(run.RunId.ToString(CultureInfo.InvariantCulture));
        run.Status.Should().Be(RunStatus.Aborting);
        run.Dispose();
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public void Abort_SeveralAbortTokenCallbacksThrow_LogsOneAggregateCarryingEveryFailure()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var first = new InvalidOperationException("first callback failed");
        var second = new InvalidOperationException("second callback failed");
        run.AbortToken.Register(() => throw first);
        run.AbortToken.Register(() => throw second);

        run.Abort("stop").Should().BeTrue();

        // One failure is logged as itself; several stay together, so none of them is lost from the log.
        FakeLogRecord log = f.LogsWithEvent("AbortCallbackFailed").Should().ContainSingle().Subject;
        log.Exception.Should().BeOfType<AggregateException>().Which.InnerExceptions.Should().BeEquivalentTo([first, second]);
        run.Dispose();
    }
}
