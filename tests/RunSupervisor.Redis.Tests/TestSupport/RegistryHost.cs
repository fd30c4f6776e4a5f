using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// One simulated host of a registry-level test: an <see cref="ActiveRunRegistry"/> on the real clock with its own store
/// client, host id, logs and record of run ends. Its leases are short, so that expiry and takeover fit in seconds.
/// </summary>
public sealed class RegistryHost : IAsyncDisposable
{
    /// <summary>Gets how long a lease lives in the store without a renew.</summary>
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(2);

    /// <summary>Gets how often the host renews: under (TTL − margin) / 2 = 900 ms, as the options require.</summary>
    public static readonly TimeSpan RenewInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets how much earlier than the store the host stops trusting its lease.</summary>
    public static readonly TimeSpan SafetyMargin = TimeSpan.FromMilliseconds(200);

    /// <summary>Gets the longest a start (or any single store call) waits for the store.</summary>
    public static readonly TimeSpan AcquireTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Gets how often the host asks the store about sessions it waits on.</summary>
    public static readonly TimeSpan RemoteIdlePollInterval = TimeSpan.FromMilliseconds(300);

    private readonly ILoggerFactory _loggerFactory;
    private readonly Lock _lock = new();
    private readonly List<(RunEndedEventArgs Ended, long At)> _ended = [];
    private readonly ConfirmationClockStore _store;

    private RegistryHost(string hostId, IRunLeaseStore store, StoreUnavailableBehavior onStoreUnavailable)
    {
        HostId = hostId;
        _store = new ConfirmationClockStore(store);

        // The default run timeout (10 minutes) never fires here: only the test or the lease ends a run.
        var options = new RunSupervisorOptions();
        RunLeaseOptions lease = options.Lease;
        lease.HostId = hostId;
        lease.LeaseTtl = Ttl;
        lease.RenewInterval = RenewInterval;
        lease.LeaseSafetyMargin = SafetyMargin;
        lease.AcquireTimeout = AcquireTimeout;
        lease.RemoteIdlePollInterval = RemoteIdlePollInterval;
        lease.OnStoreUnavailable = onStoreUnavailable;
        _loggerFactory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(Logs)).SetMinimumLevel(LogLevel.Debug));
        Registry = new ActiveRunRegistry(options, TimeProvider.System, _loggerFactory, _store);
        Registry.RunEnded += (_, e) =>
        {
            lock (_lock)
            {
                _ended.Add((e, Stopwatch.GetTimestamp()));
            }
        };
    }

    /// <summary>Gets how long a run stays valid after the send time of its last confirmed renew.</summary>
    public static TimeSpan Validity => Ttl - SafetyMargin;

    public string HostId { get; }

    public ActiveRunRegistry Registry { get; }

    public FakeLogCollector Logs { get; } = new();

    /// <summary>Creates a host with a store client of its own from <paramref name="harness"/>.</summary>
    public static async Task<RegistryHost> CreateAsync(LeaseStoreHarness harness, string hostId, StoreUnavailableBehavior onStoreUnavailable = StoreUnavailableBehavior.FailClosed)
    {
        IRunLeaseStore store = await harness.CreateStoreAsync();
        await WarmUpAsync(store, hostId);
        return new RegistryHost(hostId, store, onStoreUnavailable);
    }

    /// <summary>Waits (within <paramref name="within"/>) for <paramref name="run"/> to end, and returns its <see cref="ActiveRunRegistry.RunEnded"/>.</summary>
    public async Task<RunEndedEventArgs> EndOfAsync(RunHandle run, TimeSpan within)
    {
        // RunEnded is raised before Completion completes, so the record is there once the completion is.
        await run.Completion.WaitAsync(within);
        lock (_lock)
        {
            return _ended.Single(e => e.Ended.RunId == run.RunId).Ended;
        }
    }

    /// <summary>
    /// Gets how long after the send of this host's last answered acquire or renew <paramref name="run"/> was seen to end:
    /// a leased run whose renewals fail ends once <see cref="Validity"/> has passed since then, and not before.
    /// </summary>
    public TimeSpan EndedAfterLastConfirmedSend(RunHandle run)
    {
        lock (_lock)
        {
            return Stopwatch.GetElapsedTime(_store.LastConfirmedSend, _ended.Single(e => e.Ended.RunId == run.RunId).At);
        }
    }

    /// <summary>Says how <paramref name="run"/> ended (reason and detail), or that it has not, for a failing assertion's message.</summary>
    public string DescribeEnd(RunHandle run)
    {
        lock (_lock)
        {
            return _ended.FirstOrDefault(e => e.Ended.RunId == run.RunId).Ended is { } ended ? $"it ended {ended.Reason}: {ended.Detail}" : "it has not ended";
        }
    }

    public IReadOnlyList<FakeLogRecord> LogsWithEvent(string eventName) => [.. Logs.GetSnapshot().Where(r => r.Id.Name == eventName)];

    public async ValueTask DisposeAsync()
    {
        await Registry.DisposeAsync();
        _loggerFactory.Dispose();
    }

    /// <summary>
    /// Makes each kind of store call once through the host's own client before its registry does. A new connection, and
    /// a server that has not run the store's scripts yet (an in-process Garnet just started, say), can take longer than
    /// the short acquire timeout, which would fail a start for a reason no test here is about.
    /// </summary>
    private static async Task WarmUpAsync(IRunLeaseStore store, string hostId)
    {
        for (int attempt = 1; ; attempt++)
        {
            // A session of its own per attempt: an attempt that timed out may still take its lease later.
            string session = "warm-up-" + Guid.NewGuid().ToString("N");
            try
            {
                await using (await store.SubscribeAsync("warm-up-" + hostId, new RecordingObserver()))
                {
                    RunLease lease = (await store.AcquireAsync(new RunLeaseRequest(session, hostId, Ttl))).Lease!;
                    await store.RenewAsync([lease], Ttl);
                    await store.RequestAbortAsync(session, lease.FencingToken, reason: null);
                    await store.GetOwnerAsync(session);
                    await store.ReleaseAsync(lease);
                }

                return;
            }
            catch (RunLeaseUnavailableException) when (attempt < 5)
            {
                // Still warming up: try again.
            }
        }
    }
}
