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

    /// <summary>
    /// Makes the store unreachable for every host until <see cref="BringBackAsync"/>: every call fails or times out, as
    /// during an outage. Disposing the harness brings it back too, so a failed test never leaves a shared server down.
    /// </summary>
    public abstract Task TakeDownAsync();

    /// <summary>
    /// Ends what <see cref="TakeDownAsync"/> began. The in-memory store keeps its leases; a real server comes back empty
    /// (no persistence), and its clients reconnect on their own schedule, so the first calls may still fail.
    /// </summary>
    public abstract Task BringBackAsync();

    /// <summary>
    /// Waits until the store delivers notifications to <paramref name="hostId"/>. A registry subscribes in the background
    /// of its first leased start, so a test that needs a message (not the next renew) to reach that host waits for this.
    /// </summary>
    public abstract Task WaitUntilSubscribedAsync(string hostId, TimeSpan within);

    public abstract ValueTask DisposeAsync();
}
