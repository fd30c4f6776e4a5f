using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="RunHandle.Attach(Task)"/>: the provider task's outcome ends the run (completed, faulted, cancelled),
/// whether it was settled before it was attached or settles later; a second attach, a null task and a stale handle are refused.
/// </summary>
public sealed class RunHandleAttachTests
{
    private const string Session = "s1";

    [Fact]
    public void Attach_Null_ThrowsArgumentNullExceptionAndRunIsUnaffected()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        Action act = () => run.Attach(null!);

        act.Should().Throw<ArgumentNullException>().WithParameterName("providerTask");
        run.IsCurrent.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Running);

        // Nothing was attached: a real task can still be attached afterwards.
        run.Invoking(r => r.Attach(new TaskCompletionSource().Task)).Should().NotThrow();
    }

    [Fact]
    public async Task Attach_Twice_ThrowsInvalidOperationExceptionAndFirstTaskStillGoverns()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var first = new TaskCompletionSource();
        var second = new TaskCompletionSource();
        run.Attach(first.Task);

        Action act = () => run.Attach(second.Task);

        act.Should().Throw<InvalidOperationException>().WithMessage($"*{run.RunId}*");
        second.SetException(new InvalidOperationException("the rejected task"));
        run.IsCurrent.Should().BeTrue("the rejected task is not watched");

        // Nobody watches the rejected task, so observe its fault here: the suite-wide UnobservedTaskExceptionGuard
        // fails the run on any unobserved task exception.
        second.Task.Exception.Should().NotBeNull();

        first.SetResult();
        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task Attach_AlreadyCompletedTask_EndsRunCompletedAtOnce()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.CompletedTask);

        f.Registry.IsActive(Session).Should().BeFalse();
        run.Status.Should().Be(RunStatus.Ended);
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task Attach_AlreadyFaultedTask_EndsRunFaulted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromException(new InvalidOperationException("provider broke")));

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Faulted);
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task Attach_AlreadyCanceledTask_EndsRunAborted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        run.Attach(Task.FromCanceled(new CancellationToken(canceled: true)));

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    [Theory]
    [InlineData("complete", RunEndReason.Completed)]
    [InlineData("fault", RunEndReason.Faulted)]
    [InlineData("cancel", RunEndReason.Aborted)]
    public async Task Attach_PendingTaskSettlesLater_EndsRunWithMatchingReason(string outcome, RunEndReason expected)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        f.Time.Advance(TimeSpan.FromMinutes(1));
        f.Registry.IsActive(Session).Should().BeTrue("the provider has not settled yet");

        Settle(provider, outcome);

        f.Registry.IsActive(Session).Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(expected);
        var ended = f.Ended.Should().ContainSingle().Subject;
        ended.Args.Reason.Should().Be(expected);
        ended.Args.Duration.Should().Be(TimeSpan.FromMinutes(1));
        f.Registry.AbandonedCount.Should().Be(0);
    }

    [Theory]
    [InlineData("complete")]
    [InlineData("fault")]
    [InlineData("cancel")]
    public async Task Attach_TaskSettlesAfterExplicitAbort_EndsAborted(string outcome)
    {
        // Once aborted, how the provider settles no longer decides the reason: the run was aborted.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        run.Abort();

        Settle(provider, outcome);

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    [Fact]
    public void Attach_ToStaleHandle_DoesNotTouchNewRun()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);

        a.Attach(Task.FromException(new InvalidOperationException("late output of run A")));

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
    }

    [Fact]
    public async Task Dispose_WhileAttachedTaskPending_EndsCompletedAndLaterSettlingChangesNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);

        run.Dispose();
        provider.SetException(new InvalidOperationException("after the owner released"));

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.Ended.Should().ContainSingle();
        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().BeEmpty("a released run was never abandoned");
    }

    private static void Settle(TaskCompletionSource provider, string outcome)
    {
        switch (outcome)
        {
            case "complete":
                provider.SetResult();
                break;
            case "fault":
                provider.SetException(new InvalidOperationException("provider failed"));
                break;
            case "cancel":
                provider.SetCanceled();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null);
        }
    }
}
