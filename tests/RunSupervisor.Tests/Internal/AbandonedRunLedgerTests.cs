namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The ledger of runs that left the registry with their provider still pending (internal): oldest first, capped by
/// forgetting the oldest, and removal by run id that reports whether the run was there.
/// </summary>
public sealed class AbandonedRunLedgerTests : IDisposable
{
    // The ledger asserts that its writers hold its gate: every test holds it throughout, on its one thread.
    private readonly Lock _gate = new();

    public AbandonedRunLedgerTests() => _gate.Enter();

    public void Dispose() => _gate.Exit();

    [Fact]
    public void TryRemove_UnknownRunId_ReturnsFalseAndKeepsTheEntries()
    {
        var ledger = new AbandonedRunLedger(capacity: 4, _gate);
        AbandonedRunInfo kept = Info(1);
        ledger.Add(kept);

        ledger.TryRemove(2, out AbandonedRunInfo? info).Should().BeFalse();

        info.Should().BeNull();
        ledger.Count.Should().Be(1);
        ledger.ToArray().Should().Equal(kept);
    }

    [Fact]
    public void TryRemove_RunIdAlreadyRemoved_ReturnsFalse()
    {
        var ledger = new AbandonedRunLedger(capacity: 4, _gate);
        AbandonedRunInfo first = Info(1);
        ledger.Add(first);
        ledger.Add(Info(2));

        ledger.TryRemove(1, out AbandonedRunInfo? removed).Should().BeTrue();
        ledger.TryRemove(1, out AbandonedRunInfo? again).Should().BeFalse();

        removed.Should().BeSameAs(first);
        again.Should().BeNull();
        ledger.Count.Should().Be(1);
    }

    [Fact]
    public void Add_PastTheCapacity_ForgetsTheOldestWhichCanNoLongerBeRemoved()
    {
        var ledger = new AbandonedRunLedger(capacity: 2, _gate);
        AbandonedRunInfo oldest = Info(1);
        ledger.Add(oldest).Should().BeNull();
        ledger.Add(Info(2)).Should().BeNull();

        ledger.Add(Info(3)).Should().BeSameAs(oldest);

        ledger.Count.Should().Be(2);
        ledger.ToArray().Select(i => i.RunId).Should().Equal(2, 3);
        ledger.TryRemove(1, out _).Should().BeFalse("a forgotten run is no longer in the ledger");
    }

    private static AbandonedRunInfo Info(long runId)
        => new($"session-{runId}", runId, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(runId));
}
