using FluentAssertions;
using Xunit;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// A waiting start's completion: it hands its caller the admitted run or the reason it gave up, and lets go of the
/// caller's cancellation token, so a later cancellation of that token cannot reach a start that has already left.
/// </summary>
public sealed class PendingStartTests : IDisposable
{
    private static readonly long QueueTimeout = TimeSpan.FromMinutes(2).Ticks;
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void Constructor_QueueTimeout_CountsFromTheEnqueueInstant()
    {
        PendingStart start = Create(CancellationToken.None, enqueuedAt: 1_000);

        start.TimeoutAtTicks.Should().Be(1_000 + QueueTimeout);
        start.IsQueued.Should().BeFalse("it waits only once a queue holds it");
    }

    [Fact]
    public async Task Complete_Admitted_HandsOverTheRunAndUnregistersFromTheCallersToken()
    {
        using var cts = new CancellationTokenSource();
        PendingStart start = Create(cts.Token);
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
        PendingStart start = Create(cts.Token);
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
        PendingStart start = Create(CancellationToken.None, enqueuedAt: 1_000);

        RunEntry entry = start.CreateEntry(nowTicks: 4_000, nowUtcTicks: DateTimeOffset.UnixEpoch.UtcTicks + 4_000);

        entry.SessionId.Should().Be("s");
        entry.StartedAtTicks.Should().Be(4_000, "the run's own deadline counts from its admission, not from the enqueue");
        entry.DeadlineTicks.Should().Be(4_000 + TimeSpan.FromMinutes(10).Ticks);
        entry.GraceTicks.Should().Be(TimeSpan.FromSeconds(30).Ticks);
        entry.Lane.Should().Be(0);
        entry.Leased.Should().BeFalse("the registry has no lease store");
    }

    private PendingStart Create(CancellationToken token, long enqueuedAt = 0)
    {
        var spec = new StartSpec(TimeSpan.FromMinutes(10).Ticks, TimeSpan.FromSeconds(30).Ticks, idleTicks: 0, QueueTimeout, SessionBusyBehavior.Wait, background: false, lane: 0);
        return new PendingStart(_registry, "s", SessionTable.Hash("s"), spec, observer: null, enqueuedAt, token);
    }
}
