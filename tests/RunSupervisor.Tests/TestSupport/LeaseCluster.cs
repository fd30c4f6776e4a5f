using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// Simulated hosts: registries that share one <see cref="InMemoryRunLeaseStore"/> and one <see cref="FakeTimeProvider"/>,
/// each with its own host id, logs and record of ends.
/// </summary>
internal sealed class LeaseCluster : IDisposable
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(15);
    public static readonly TimeSpan Renew = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan Margin = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan StoreTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan Poll = TimeSpan.FromSeconds(5);

    private readonly List<Host> _hosts = [];

    public LeaseCluster()
    {
        Time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Store = new InMemoryRunLeaseStore(Time);
    }

    public FakeTimeProvider Time { get; }

    public InMemoryRunLeaseStore Store { get; }

    /// <summary>Adds a host; <paramref name="configure"/> adjusts its options (the lease defaults above are set first).</summary>
    public Host AddHost(string hostId, Action<RunSupervisorOptions>? configure = null, IRunLeaseStore? store = null)
    {
        RunSupervisorOptions options = HostOptions(hostId);
        configure?.Invoke(options);
        var host = new Host(hostId, options, Time, store ?? Store);
        _hosts.Add(host);
        return host;
    }

    /// <summary>Options for a host with this cluster's lease settings, for a test that builds its registry itself.</summary>
    public static RunSupervisorOptions HostOptions(string hostId)
    {
        var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(10), GracePeriod = TimeSpan.FromSeconds(30) };
        options.Lease.HostId = hostId;
        options.Lease.LeaseTtl = Ttl;
        options.Lease.RenewInterval = Renew;
        options.Lease.LeaseSafetyMargin = Margin;
        options.Lease.AcquireTimeout = StoreTimeout;
        options.Lease.RemoteIdlePollInterval = Poll;
        return options;
    }

    /// <summary>Takes the session's lease for <paramref name="hostId"/> directly in the store, for an hour: another host that holds it.</summary>
    public static async Task<RunLease> HoldElsewhereAsync(IRunLeaseStore store, string sessionId, string hostId = "a")
        => (await store.AcquireAsync(new RunLeaseRequest(sessionId, hostId, TimeSpan.FromHours(1)))).Lease!;

    public void Dispose()
    {
        foreach (Host host in _hosts)
        {
            host.Dispose();
        }
    }

    internal sealed class Host : IDisposable
    {
        private readonly ILoggerFactory _loggerFactory;

        public Host(string hostId, RunSupervisorOptions options, TimeProvider time, IRunLeaseStore store)
        {
            HostId = hostId;
            _loggerFactory = new LoggerFactory([LoggerProvider]);
            Registry = new ActiveRunRegistry(options, time, _loggerFactory, store);
            Registry.RunEnded += (_, e) =>
            {
                lock (Ended)
                {
                    Ended.Add(e);
                }
            };
        }

        public string HostId { get; }

        public ActiveRunRegistry Registry { get; }

        public FakeLoggerProvider LoggerProvider { get; } = new();

        public List<RunEndedEventArgs> Ended { get; } = [];

        public IEnumerable<FakeLogRecord> LogsWithEvent(string eventName) => LoggerProvider.Collector.GetSnapshot().Where(r => r.Id.Name == eventName);

        public void Dispose()
        {
            Registry.Dispose();
            _loggerFactory.Dispose();
        }
    }
}
