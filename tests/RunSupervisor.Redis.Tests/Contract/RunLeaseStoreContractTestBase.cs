using RunSupervisor.Leasing;
using RunSupervisor.Redis.Tests.TestSupport;

namespace RunSupervisor.Redis.Tests.Contract;

/// <summary>What every contract test class shares: a fresh harness per test, and small helpers.</summary>
public abstract class RunLeaseStoreContractTestBase : IAsyncLifetime
{
    protected static readonly TimeSpan LongTtl = TimeSpan.FromSeconds(30);

    private LeaseStoreHarness? _harness;

    protected LeaseStoreHarness Harness => _harness ?? throw new InvalidOperationException("Not initialized.");

    public Task InitializeAsync()
    {
        _harness = CreateHarness();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_harness is not null)
        {
            await _harness.DisposeAsync();
        }
    }

    protected abstract LeaseStoreHarness CreateHarness();

    protected static string NewSession() => "session-" + Guid.NewGuid().ToString("N");

    protected static RunLeaseRequest Request(string sessionId, string hostId, TimeSpan? ttl = null, bool supersede = false) =>
        new(sessionId, hostId, ttl ?? LongTtl, supersede);

    protected static async Task<RunLease> AcquiredAsync(IRunLeaseStore store, string sessionId, string hostId, TimeSpan? ttl = null, bool supersede = false)
    {
        RunLeaseAcquireResult result = await store.AcquireAsync(Request(sessionId, hostId, ttl, supersede));
        result.IsAcquired.Should().BeTrue($"session '{sessionId}' should be free for {hostId} (owner: {result.Owner})");
        return result.Lease!;
    }

    /// <summary>Polls until the session is free, on the real clock, within a generous bound.</summary>
    protected static async Task WaitUntilFreeAsync(IRunLeaseStore store, string sessionId, TimeSpan within)
    {
        DateTime deadline = DateTime.UtcNow + within;
        while (await store.GetOwnerAsync(sessionId) is not null)
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"the lease of '{sessionId}' should have lapsed");
            await Task.Delay(25);
        }
    }
}
