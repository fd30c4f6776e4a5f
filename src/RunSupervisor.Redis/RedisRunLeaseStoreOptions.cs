namespace RunSupervisor.Redis;

/// <summary>
/// How a <see cref="RedisRunLeaseStore"/> lays out its keys and channels and how long it waits for Redis; bound from the
/// configuration section <c>RunSupervisor:Redis</c> (<see cref="SectionName"/>). Validated when the store is built.
/// </summary>
/// <remarks>
/// The lease's time to live, renew interval and acquire timeout are the registry's (<c>RunSupervisor:Lease</c>,
/// <see cref="Leasing.RunLeaseOptions"/>): the store takes the time to live from each request.
/// </remarks>
public sealed class RedisRunLeaseStoreOptions
{
    /// <summary>The configuration section the options are bound from: <c>RunSupervisor:Redis</c>.</summary>
    public const string SectionName = "RunSupervisor:Redis";

    /// <summary>The longest <see cref="KeyPrefix"/> and <see cref="ChannelPrefix"/> may be: 100 characters.</summary>
    public const int MaxPrefixLength = 100;

    /// <summary>
    /// Gets or sets a StackExchange.Redis configuration string (for example <c>"redis:6379,abortConnect=false"</c>) for a
    /// connection the store owns. Used only by the registration that binds configuration, when it is set; otherwise the
    /// application's registered <c>IConnectionMultiplexer</c> is used. Default <see langword="null"/>.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>
    /// Gets or sets the prefix of every key: a session's keys are <c>{KeyPrefix}:{&lt;session&gt;}:lease</c> and
    /// <c>{KeyPrefix}:{&lt;session&gt;}:fence</c>. Default <c>"runsupervisor"</c>; not empty, at most
    /// <see cref="MaxPrefixLength"/> characters, no braces (they would break the per-session hash tag).
    /// </summary>
    public string KeyPrefix { get; set; } = "runsupervisor";

    /// <summary>
    /// Gets or sets the prefix of the pub/sub channels: <c>{ChannelPrefix}:host:&lt;host&gt;</c> for one host's aborts
    /// and supersedes, <c>{ChannelPrefix}:released</c> for every release. Default <c>"runsupervisor"</c>; not empty, at
    /// most <see cref="MaxPrefixLength"/> characters, no braces.
    /// </summary>
    public string ChannelPrefix { get; set; } = "runsupervisor";

    /// <summary>Gets or sets the database number; -1 (the default) for the connection's default database. At least -1. Redis Cluster has only database 0.</summary>
    public int Database { get; set; } = -1;

    /// <summary>
    /// Gets or sets the longest one store call waits for Redis before it fails with
    /// <see cref="Leasing.RunLeaseUnavailableException"/>, whatever the caller's cancellation token allows. Default 2
    /// seconds; greater than zero, at most 1 minute. Keep it at most the registry's acquire timeout.
    /// </summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Gets or sets how long a session's fencing counter outlives its last acquire. Tokens are
    /// <c>max(previous + 1, server time in µs)</c>, so a counter that expired only matters if the server's clock went
    /// back by more than this meanwhile. Default 7 days; at least 1 minute, at most 365 days.
    /// </summary>
    public TimeSpan FenceRetention { get; set; } = TimeSpan.FromDays(7);
}
