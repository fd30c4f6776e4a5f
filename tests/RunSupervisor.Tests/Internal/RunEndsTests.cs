using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// How an end reads: the end's detail in words, and the exception a supervised call's caller sees for it: the
/// caller's own cancellation when it asked to stop, the registry's verdict otherwise, with the time the run was allowed.
/// </summary>
public sealed class RunEndsTests : IDisposable
{
    private static readonly long Idle = TimeSpan.FromSeconds(20).Ticks;

    // Not zero, so an allowed time computed from the wrong instants shows.
    private static readonly long StartedAt = TimeSpan.FromSeconds(5).Ticks;
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void Describe_FaultedWithoutAFault_SaysTheProviderFaulted()
    {
        RunEntry entry = Create();

        RunEnds.Describe(entry, RunEndReason.Faulted, EndTrigger.ProviderSettled, replacementRunId: 0).Should().Be("the provider faulted");
    }

    [Fact]
    public void Describe_FaultedWithAFault_NamesTheFault()
    {
        RunEntry entry = Create();
        entry.ProviderTask = Task.FromException(new InvalidOperationException("boom"));

        RunEnds.Describe(entry, RunEndReason.Faulted, EndTrigger.ProviderSettled, replacementRunId: 0)
            .Should().Be("the provider faulted: InvalidOperationException: boom");
    }

    [Fact]
    public void Describe_LeaseLost_SaysTheLeaseWasLost()
    {
        RunEntry entry = Create();

        RunEnds.Describe(entry, RunEndReason.LeaseLost, EndTrigger.LeaseLost, replacementRunId: 0).Should().Be("the lease was lost");
    }

    [Fact]
    public void Describe_DeadlineAbort_SaysHowLongTheRunWasAllowed()
    {
        RunEntry entry = Create();
        entry.SetAborting(AbortCause.Deadline, detail: null, entry.DeadlineTicks + GraceTicks);

        RunEnds.Describe(entry, RunEndReason.TimedOut, EndTrigger.ProviderSettled, replacementRunId: 0)
            .Should().Be("deadline passed after 00:10:00", "the allowed time runs from the start, not from the clock's origin");
    }

    [Theory]
    [InlineData(RunEndReason.ForceEvicted)]
    [InlineData(RunEndReason.Superseded)]
    [InlineData(RunEndReason.LeaseLost)]
    public void ToCallerException_CallerCancelledAndProviderCompleted_CallerHearsItsOwnCancellation(RunEndReason reason)
    {
        RunEntry entry = Create();
        entry.MarkEnded(reason, "why", StartedAt + 1);
        using var caller = new CancellationTokenSource();
        caller.Cancel();

        Exception? exception = RunEnds.ToCallerException(entry, Task.CompletedTask, caller.Token);

        var cancelled = exception.Should().BeOfType<OperationCanceledException>().Subject;
        cancelled.CancellationToken.Should().Be(caller.Token, "whatever the run's reason, the caller asked to stop");
        cancelled.Message.Should().Be($"The caller cancelled run 3 for session 's'; it ended {reason} (why).");
    }

    [Fact]
    public void ToCallerException_CallerCancelledBeforeTheProviderSettledOnAPlainCompletion_SaysCompleted()
    {
        RunEntry entry = Create();
        entry.MarkEnded(RunEndReason.Completed, detail: null, StartedAt + 1);
        using var caller = new CancellationTokenSource();
        caller.Cancel();

        Exception? exception = RunEnds.ToCallerException(entry, new TaskCompletionSource().Task, caller.Token);

        exception.Should().BeOfType<OperationCanceledException>()
            .Which.Message.Should().Be("The caller cancelled run 3 for session 's'; it ended Completed (completed).");
    }

    [Fact]
    public void ToCallerException_DisposedBeforeTheProviderSettled_CancelledWithTheRunsToken()
    {
        RunEntry entry = Create();
        entry.MarkEnded(RunEndReason.Aborted, RunEnds.DisposedText, StartedAt + 1);

        Exception? exception = RunEnds.ToCallerException(entry, new TaskCompletionSource().Task, CancellationToken.None);

        var cancelled = exception.Should().BeOfType<OperationCanceledException>().Subject;
        cancelled.CancellationToken.Should().Be(entry.Token);
        cancelled.Message.Should().Be("Run 3 for session 's' ended Aborted (the registry was disposed) before its provider settled.");
    }

    [Fact]
    public void ToCallerException_ProviderCancelledAtTheDeadline_TimedOutAfterTheRunsTimeout()
    {
        RunEntry entry = Create();
        entry.SetAborting(AbortCause.Deadline, detail: null, entry.DeadlineTicks + GraceTicks);
        entry.MarkEnded(RunEndReason.TimedOut, "deadline passed after 00:10:00", entry.DeadlineTicks + 1);

        Exception? exception = RunEnds.ToCallerException(entry, Task.FromCanceled(new CancellationToken(canceled: true)), CancellationToken.None);

        var timedOut = exception.Should().BeOfType<RunTimedOutException>().Subject;
        timedOut.Timeout.Should().Be(TimeSpan.FromTicks(TimeoutTicks), "the run was allowed from its start to its deadline");
        timedOut.Reason.Should().Be(RunEndReason.TimedOut);
        timedOut.RunId.Should().Be(3);
        timedOut.InnerException.Should().BeAssignableTo<OperationCanceledException>("the provider's own cancellation is kept");
    }

    [Fact]
    public void ToCallerException_ProviderFaultedWithCancellationWhenIdle_StalledAfterTheIdleTimeout()
    {
        RunEntry entry = Create();
        entry.SetAborting(AbortCause.Idle, detail: null, StartedAt + Idle + GraceTicks);
        entry.MarkEnded(RunEndReason.Stalled, "no progress for 00:00:20", StartedAt + Idle + 1);
        var fault = new OperationCanceledException("provider stopped");

        Exception? exception = RunEnds.ToCallerException(entry, Task.FromException(fault), CancellationToken.None);

        var timedOut = exception.Should().BeOfType<RunTimedOutException>().Subject;
        timedOut.Timeout.Should().Be(TimeSpan.FromTicks(Idle));
        timedOut.Reason.Should().Be(RunEndReason.Stalled);
        timedOut.InnerException.Should().BeSameAs(fault);
    }

    private RunEntry Create() => Entry(_registry, startedAtTicks: StartedAt, spec: Spec(idleTicks: Idle), runId: 3);
}
