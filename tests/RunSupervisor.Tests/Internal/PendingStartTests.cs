using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// A waiting start's completion: it hands its caller the admitted run or the reason it gave up, and lets go of the
/// caller's cancellation token, so a later cancellation of that token cannot reach a start that has already left.
/// </summary>
public sealed class PendingStartTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void Constructor_QueueTimeout_CountsFromTheEnqueueInstant()
    {
        PendingStart start = Pending(_registry, enqueuedTicks: 1_000);

        start.TimeoutAtTicks.Should().Be(1_000 + QueueTimeoutTicks);
        start.IsQueued.Should().BeFalse("it waits only once a queue holds it");
    }

    [Fact]
    public async Task Complete_Admitted_HandsOverTheRunAndUnregistersFromTheCallersToken()
    {
        using var cts = new CancellationTokenSource();
        PendingStart start = Pending(_registry);
        int cancelCallbacks = 0;
        start.Registration = cts.Token.Register(() => cancelCallbacks++);
        RunEntry entry = start.CreateEntry(nowTicks: 5, nowUtcTicks: DateTimeOffset.UnixEpoch.UtcTicks);
        start.Admitted = entry;

        start.Complete();
        cts.Cancel();

        start.Task.IsCompletedSuccessfully.Should().BeTrue();
        (await start.Task).Entry.Should().BeSameAs(entry);
        cancelCallbacks.Should().Be(0, "a start that has left no longer listens to its caller's token");
    }

    [Fact]
    public void Complete_Failed_FailsWithTheFailureAndUnregistersFromTheCallersToken()
    {
        using var cts = new CancellationTokenSource();
        PendingStart start = Pending(_registry);
        int cancelCallbacks = 0;
        start.Registration = cts.Token.Register(() => cancelCallbacks++);
        var failure = new InvalidOperationException("gave up");
        start.Failure = failure;

        start.Complete();
        cts.Cancel();

        start.Task.IsFaulted.Should().BeTrue();
        start.Task.Exception!.InnerException.Should().BeSameAs(failure);
        cancelCallbacks.Should().Be(0);
    }

    [Fact]
    public void CreateEntry_AdmittedAt_RunStartsThenWithTheStartsOptions()
    {
        PendingStart start = Pending(_registry, enqueuedTicks: 1_000);

        RunEntry entry = start.CreateEntry(nowTicks: 4_000, nowUtcTicks: DateTimeOffset.UnixEpoch.UtcTicks + 4_000);

        entry.SessionId.Should().Be("s");
        entry.StartedAtTicks.Should().Be(4_000, "the run's own deadline counts from its admission, not from the enqueue");
        entry.DeadlineTicks.Should().Be(4_000 + TimeoutTicks);
        entry.GraceTicks.Should().Be(GraceTicks);
        entry.Lane.Should().Be(0);
        entry.Leased.Should().BeFalse("the registry has no lease store");
    }
}
