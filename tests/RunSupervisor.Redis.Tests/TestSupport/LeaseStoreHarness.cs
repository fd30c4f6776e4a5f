using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>One store shared by simulated hosts, as a contract test sees it: each host gets its own store client.</summary>
public abstract class LeaseStoreHarness : IAsyncDisposable
{
    /// <summary>Gets a store client for one more host (a new connection, for a real server).</summary>
    public abstract Task<IRunLeaseStore> CreateStoreAsync();

    /// <summary>Restarts the store on the same address, losing every key (no persistence).</summary>
    public abstract Task RestartAsync();

    /// <summary>Deletes one session's lease behind every host's back.</summary>
    public abstract Task DeleteLeaseAsync(string sessionId);

    public abstract ValueTask DisposeAsync();
}
