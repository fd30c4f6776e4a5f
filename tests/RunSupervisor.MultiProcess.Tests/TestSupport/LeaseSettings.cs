using System.Globalization;
using RunSupervisor.Leasing;
using StackExchange.Redis;

namespace RunSupervisor.MultiProcess.Tests.TestSupport;

/// <summary>
/// Short leases so that a takeover fits in seconds of real time, the same for the host processes and the in-process
/// registries. RenewInterval stays under (TTL − margin) / 2, as the options require.
/// </summary>
internal static class LeaseSettings
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan RenewInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan SafetyMargin = TimeSpan.FromMilliseconds(300);
    public static readonly TimeSpan RemoteIdlePollInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan AcquireTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Gets the slack every real-time bound allows on top of what the lease arithmetic says: a shared 2-core machine, process starts, reconnects.</summary>
    public static readonly TimeSpan Slack = TimeSpan.FromSeconds(3);

    /// <summary>Gets the local validity of a lease after its last confirmed renew.</summary>
    public static TimeSpan Validity => Ttl - SafetyMargin;

    public static string[] HostArguments =>
    [
        "--ttl", Ms(Ttl), "--renew", Ms(RenewInterval), "--margin", Ms(SafetyMargin),
        "--poll", Ms(RemoteIdlePollInterval), "--acquire", Ms(AcquireTimeout),
    ];

    public static RunSupervisorOptions Options(string hostId)
    {
        var options = new RunSupervisorOptions
        {
            // The runs hang on purpose: only the lease may end them, never the deadline.
            RunTimeout = TimeSpan.FromMinutes(5),
            MaxRunDuration = TimeSpan.FromMinutes(10),
        };
        RunLeaseOptions lease = options.Lease;
        lease.HostId = hostId;
        lease.LeaseTtl = Ttl;
        lease.RenewInterval = RenewInterval;
        lease.LeaseSafetyMargin = SafetyMargin;
        lease.RemoteIdlePollInterval = RemoteIdlePollInterval;
        lease.AcquireTimeout = AcquireTimeout;
        return options;
    }

    /// <summary>A connection that gives up on a call quickly and finds a restarted server again within a fraction of the TTL.</summary>
    public static ConfigurationOptions Connection(int port)
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture));
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 1000;
        options.AsyncTimeout = 3000;
        options.SyncTimeout = 3000;
        options.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        options.ReconnectRetryPolicy = new LinearRetry(100);
        return options;
    }

    /// <summary>The lease key of a session, as the store lays it out (the sessions here need no escaping).</summary>
    public static RedisKey LeaseKey(string prefix, string sessionId) => $"{prefix}:{{{sessionId}}}:lease";

    public static string NewPrefix() => "mp" + Guid.NewGuid().ToString("N")[..10];

    private static string Ms(TimeSpan value) => ((long)value.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
}
