using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RunSupervisor.Leasing;
using StackExchange.Redis;

namespace RunSupervisor.Redis;

/// <summary>
/// An <see cref="IRunLeaseStore"/> on Redis (or a Redis-compatible server such as Garnet) through StackExchange.Redis:
/// one lease per session across every host that shares the server, fencing tokens minted by the server's clock,
/// renewals pipelined in one batch, and aborts, supersedes and releases delivered over pub/sub.
/// </summary>
/// <remarks>
/// <para>Thread-safe. Every operation is one Lua script on the primary (<see cref="CommandFlags.DemandMaster"/>), sent by
/// its SHA1 and re-sent with its source when the server does not know it. A session's keys are
/// <c>{KeyPrefix}:{&lt;session&gt;}:lease</c> and <c>…:fence</c>, hash-tagged so that Redis Cluster keeps them in one slot.</para>
/// <para>Every call waits at most <see cref="RedisRunLeaseStoreOptions.OperationTimeout"/> (or until the caller's token
/// is cancelled) and fails with <see cref="RunLeaseUnavailableException"/> when Redis does not answer or errs. An acquire
/// that fails that way may still run later (the connection replays what it had queued), so a release of whatever that
/// very acquire took is queued right behind it.</para>
/// <para>The guarantee is best-effort: one active run per session while Redis keeps its data and its primary. Safety
/// comes from <see cref="RunLease.FencingToken"/>, which only grows, checked by the resource a run writes to.</para>
/// </remarks>
public sealed partial class RedisRunLeaseStore : IRunLeaseStore, IDisposable, IAsyncDisposable
{
    /// <summary>The name of the meter the store's instruments belong to: <c>RunSupervisor.Redis</c>.</summary>
    public const string MeterName = RedisLeaseMetrics.MeterName;

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly bool _ownsMultiplexer;
    private readonly IDatabase _database;
    private readonly LeaseKeys _keys;
    private readonly TimeSpan _timeout;
    private readonly long _fenceRetentionMs;
    private readonly ILogger _logger;
    private readonly RedisLeaseMetrics _metrics;
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="RedisRunLeaseStore"/> class on a connection the caller owns.</summary>
    /// <param name="multiplexer">The connection; shared with the application, not disposed by the store.</param>
    /// <param name="options">Key and channel prefixes, database and per-call timeout; <see langword="null"/> for the defaults.</param>
    /// <param name="loggerFactory">Creates the store's logger; <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="multiplexer"/> is <see langword="null"/>.</exception>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException"><paramref name="options"/> is invalid; the message names each bad option and its allowed range.</exception>
    public RedisRunLeaseStore(IConnectionMultiplexer multiplexer, RedisRunLeaseStoreOptions? options = null, ILoggerFactory? loggerFactory = null)
        : this(multiplexer, options, loggerFactory, ownsMultiplexer: false)
    {
    }

    internal RedisRunLeaseStore(IConnectionMultiplexer multiplexer, RedisRunLeaseStoreOptions? options, ILoggerFactory? loggerFactory, bool ownsMultiplexer)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        options ??= new RedisRunLeaseStoreOptions();
        RedisRunLeaseStoreOptionsValidator.ThrowIfInvalid(options);
        _multiplexer = multiplexer;
        _ownsMultiplexer = ownsMultiplexer;
        _database = multiplexer.GetDatabase(options.Database);
        _keys = new LeaseKeys(options.KeyPrefix, options.ChannelPrefix, ConnectionChannelPrefix(multiplexer));
        _timeout = options.OperationTimeout;
        _fenceRetentionMs = (long)options.FenceRetention.TotalMilliseconds;
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisRunLeaseStore>() ?? NullLogger.Instance;
        _metrics = new RedisLeaseMetrics(_logger);
        _onReleased = OnReleasedMessage;
        multiplexer.ConnectionFailed += OnConnectionFailed;
        multiplexer.ConnectionRestored += OnConnectionRestored;
    }

    /// <summary>
    /// The connection's channel prefix (<c>channelPrefix</c> in its configuration), or empty. Read back from the
    /// configuration string, the one place StackExchange.Redis shows it; a string it cannot read back (a client name
    /// with a separator in it, say) counts as no prefix rather than failing the store.
    /// </summary>
    private static string ConnectionChannelPrefix(IConnectionMultiplexer multiplexer)
    {
        if (multiplexer.Configuration is not { Length: > 0 } configuration)
        {
            return string.Empty;
        }

        try
        {
            return (string?)ConfigurationOptions.Parse(configuration, ignoreUnknown: true).ChannelPrefix ?? string.Empty;
        }
#pragma warning disable CA1031 // Whatever the parser throws means the same here: the prefix cannot be known, so none is assumed.
        catch (Exception)
#pragma warning restore CA1031
        {
            return string.Empty;
        }
    }

    /// <summary>
    /// Gets a value indicating whether the connection to Redis is up: a cheap signal for a health check (no round trip).
    /// A <see langword="false"/> means store calls are failing or about to.
    /// </summary>
    public bool IsConnected => _multiplexer.IsConnected;

    /// <summary>Gets the store's instruments, for tests that collect from this store only.</summary>
    internal RedisLeaseMetrics Metrics => _metrics;

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is <see langword="null"/>.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not answer within the per-call timeout, or failed.</exception>
    public ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Nothing is sent: a call given up before it starts must not leave a lease behind.
            return ValueTask.FromCanceled<RunLeaseAcquireResult>(cancellationToken);
        }

        return new ValueTask<RunLeaseAcquireResult>(AcquireCoreAsync(request, cancellationToken));
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="leases"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ttl"/> is not positive.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not answer every renew within the per-call timeout, or failed.</exception>
    /// <remarks>One script call per lease, all written to the connection before the first answer is awaited.</remarks>
    public ValueTask<IReadOnlyList<RunLeaseRenewResult>> RenewAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(leases);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        ThrowIfDisposed();
        if (leases.Count == 0)
        {
            return new ValueTask<IReadOnlyList<RunLeaseRenewResult>>(Array.Empty<RunLeaseRenewResult>());
        }

        if (cancellationToken.IsCancellationRequested)
        {
            // Nothing is sent: a call given up before it starts must not leave a lease behind.
            return ValueTask.FromCanceled<IReadOnlyList<RunLeaseRenewResult>>(cancellationToken);
        }

        return new ValueTask<IReadOnlyList<RunLeaseRenewResult>>(RenewCoreAsync(leases, ttl, cancellationToken));
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="lease"/> is <see langword="null"/>.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not answer within the per-call timeout, or failed.</exception>
    public ValueTask<bool> ReleaseAsync(RunLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Nothing is sent: a call given up before it starts must not leave a lease behind.
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        return new ValueTask<bool>(ReleaseCoreAsync(lease, cancellationToken));
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not answer within the per-call timeout, or failed.</exception>
    public ValueTask<bool> RequestAbortAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Nothing is sent: a call given up before it starts must not leave a lease behind.
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        return new ValueTask<bool>(RequestAbortCoreAsync(sessionId, expectedFencingToken, reason, cancellationToken));
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentNullException"><paramref name="sessionId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="RunLeaseUnavailableException">Redis did not answer within the per-call timeout, or failed.</exception>
    public ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            // Nothing is sent: a call given up before it starts must not leave a lease behind.
            return ValueTask.FromCanceled<RunLeaseInfo?>(cancellationToken);
        }

        return new ValueTask<RunLeaseInfo?>(GetOwnerCoreAsync(sessionId, cancellationToken));
    }

    /// <summary>Stops delivering notifications and, if the store created its own connection, closes it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _multiplexer.ConnectionFailed -= OnConnectionFailed;
        _multiplexer.ConnectionRestored -= OnConnectionRestored;
        UnsubscribeAll();
        _metrics.Dispose();
        if (_ownsMultiplexer)
        {
            _multiplexer.Dispose();
        }
    }

    /// <summary>Stops delivering notifications and, if the store created its own connection, closes it.</summary>
    /// <returns>A task that completes when the store is disposed.</returns>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    private static long TtlMilliseconds(TimeSpan ttl) => Math.Max(1, (long)Math.Ceiling(ttl.TotalMilliseconds));

    private static long ParseLong(RedisResult result) => long.Parse((string)result!, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static DateTimeOffset? ParseExpiry(RedisResult result)
    {
        long ms = ParseLong(result);
        return ms > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    private async Task<RunLeaseAcquireResult> AcquireCoreAsync(RunLeaseRequest request, CancellationToken cancellationToken)
    {
        string nonce = Guid.NewGuid().ToString("N");
        Task<RedisResult> call = LeaseScripts.Acquire.EvaluateAsync(
            _database,
            [_keys.Lease(request.SessionId), _keys.Fence(request.SessionId)],
            [request.HostId, TtlMilliseconds(request.Ttl), request.Supersede ? 1 : 0, _fenceRetentionMs, _keys.HostChannelOnServer(request.HostId), nonce, LeaseKeys.Escape(request.SessionId)]);
        RedisResult answer;
        try
        {
            answer = await CallAsync(LeaseScripts.Acquire.Name, request.SessionId, call, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The script may still run: it is on the wire, in the connection's backlog, or about to be re-sent with its source
            // after a NOSCRIPT. A release keyed by this acquire's nonce, sent once the acquire has settled, runs after it and
            // removes exactly what it took, if anything. Even an acquire that has completed by now is compensated: its answer
            // may have come in just after the caller gave up on it, and nobody else will ever release what it took.
            _ = CompensateAsync(call, request.SessionId, nonce);
            throw;
        }

        RedisResult[] fields = (RedisResult[])answer!;
        if (ParseLong(fields[0]) == 0)
        {
            return RunLeaseAcquireResult.Held(new RunLeaseInfo(request.SessionId, (string)fields[1]!, ParseLong(fields[2]), ParseExpiry(fields[3])));
        }

        _metrics.Measure(_metrics.Acquired, 1L, static (c, v) => c.Add(v));
        var lease = new RunLease(request.SessionId, request.HostId, ParseLong(fields[1]));
        RunLeaseInfo? superseded = fields.Length > 3
            ? new RunLeaseInfo(request.SessionId, (string)fields[3]!, ParseLong(fields[4]), ParseExpiry(fields[5]))
            : null;
        return RunLeaseAcquireResult.Acquired(lease, superseded);
    }

    private async Task CompensateAsync(Task<RedisResult> acquire, string sessionId, string nonce)
    {
        _logger.AcquireCompensationQueued(sessionId);

        // Not before: a release sent while the acquire still waits for its NOSCRIPT fallback would run first and find nothing.
        await ((Task)acquire).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        try
        {
            RedisResult answer = await CallAsync(
                LeaseScripts.Compensate.Name,
                sessionId,
                LeaseScripts.Compensate.EvaluateAsync(_database, [_keys.Lease(sessionId)], [nonce, _keys.ReleasedChannelOnServer, LeaseKeys.Escape(sessionId)]),
                CancellationToken.None).ConfigureAwait(false);
            long token = ParseLong(answer);
            if (token > 0)
            {
                _metrics.Measure(_metrics.Released, 1L, static (c, v) => c.Add(v));
                _logger.AcquireCompensated(sessionId, token);
            }
        }
        catch (Exception e) when (e is RunLeaseUnavailableException or ObjectDisposedException)
        {
            // A compensation that timed out is still queued on the connection and may run later, which is what it is for.
            _logger.AcquireCompensationFailed(sessionId, e);
        }
    }

    private async Task<IReadOnlyList<RunLeaseRenewResult>> RenewCoreAsync(IReadOnlyList<RunLease> leases, TimeSpan ttl, CancellationToken cancellationToken)
    {
        RedisValue ttlMs = TtlMilliseconds(ttl);
        var calls = new Task<RedisResult>[leases.Count];
        for (int i = 0; i < calls.Length; i++)
        {
            RunLease lease = leases[i];
            ArgumentNullException.ThrowIfNull(lease, nameof(leases));
            calls[i] = LeaseScripts.Renew.EvaluateAsync(_database, [_keys.Lease(lease.SessionId)], [lease.FencingToken, ttlMs]);
        }

        RedisResult[] answers = await CallAsync(LeaseScripts.Renew.Name, leases[0].SessionId, Task.WhenAll(calls), cancellationToken).ConfigureAwait(false);
        var results = new RunLeaseRenewResult[answers.Length];
        long renewed = 0;
        for (int i = 0; i < answers.Length; i++)
        {
            RunLease lease = leases[i];
            RedisResult[] fields = (RedisResult[])answers[i]!;
            switch (ParseLong(fields[0]))
            {
                case 1:
                    string reason = (string?)fields[2] ?? string.Empty;
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.Renewed, (string?)fields[1] == "1", reason.Length > 0 ? reason[1..] : null);
                    renewed++;
                    break;
                case 2:
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.TakenOver, currentOwner: new RunLeaseInfo(lease.SessionId, (string)fields[1]!, ParseLong(fields[2]), ParseExpiry(fields[3])));
                    break;
                default:
                    results[i] = new RunLeaseRenewResult(lease, RunLeaseRenewStatus.Missing);
                    break;
            }
        }

        _metrics.Measure(_metrics.Renewed, (long)renewed, static (c, v) => c.Add(v));
        if (renewed < answers.Length)
        {
            _metrics.Measure(_metrics.Lost, (long)(answers.Length - renewed), static (c, v) => c.Add(v));
        }

        return results;
    }

    private async Task<bool> ReleaseCoreAsync(RunLease lease, CancellationToken cancellationToken)
    {
        RedisResult answer = await CallAsync(
            LeaseScripts.Release.Name,
            lease.SessionId,
            LeaseScripts.Release.EvaluateAsync(_database, [_keys.Lease(lease.SessionId)], [lease.FencingToken, _keys.ReleasedChannelOnServer, LeaseKeys.Escape(lease.SessionId)]),
            cancellationToken).ConfigureAwait(false);
        bool released = (long)answer == 1;
        if (released)
        {
            _metrics.Measure(_metrics.Released, 1L, static (c, v) => c.Add(v));
        }

        return released;
    }

    private async Task<bool> RequestAbortCoreAsync(string sessionId, long? expectedFencingToken, string? reason, CancellationToken cancellationToken)
    {
        RedisValue expected = expectedFencingToken is long token ? token : RedisValue.EmptyString;
        RedisResult answer = await CallAsync(
            LeaseScripts.Abort.Name,
            sessionId,
            LeaseScripts.Abort.EvaluateAsync(_database, [_keys.Lease(sessionId)], [expected, reason is null ? 0 : 1, reason ?? string.Empty, LeaseKeys.Escape(sessionId)]),
            cancellationToken).ConfigureAwait(false);
        return (long)answer == 1;
    }

    private async Task<RunLeaseInfo?> GetOwnerCoreAsync(string sessionId, CancellationToken cancellationToken)
    {
        RedisResult answer = await CallAsync(
            LeaseScripts.Owner.Name,
            sessionId,
            LeaseScripts.Owner.EvaluateAsync(_database, [_keys.Lease(sessionId)], []),
            cancellationToken).ConfigureAwait(false);
        if (answer.IsNull)
        {
            return null;
        }

        RedisResult[] fields = (RedisResult[])answer!;
        return new RunLeaseInfo(sessionId, (string)fields[0]!, ParseLong(fields[1]), ParseExpiry(fields[2]));
    }

    /// <summary>
    /// Awaits one store call for at most the per-call timeout, records its round trip, and turns every failure other
    /// than the caller's cancellation into <see cref="RunLeaseUnavailableException"/>, which the registry maps.
    /// </summary>
    private async Task<T> CallAsync<T>(string operation, string sessionId, Task<T> call, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        try
        {
            T result = await call.WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            Record(operation, started, error: null);
            return result;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Observe(call);
            Record(operation, started, "cancelled");
            throw;
        }
        catch (Exception e) when (e is TimeoutException or RedisException or ObjectDisposedException)
        {
            Observe(call);
            if (!call.IsCompleted)
            {
                Record(operation, started, "timeout");
                _logger.CallTimedOut(operation, sessionId, _timeout);
                throw new RunLeaseUnavailableException(sessionId, new TimeoutException(string.Format(CultureInfo.InvariantCulture, "Redis did not answer the {0} script within {1}", operation, _timeout)));
            }

            Record(operation, started, e switch
            {
                TimeoutException => "timeout",
                RedisConnectionException or ObjectDisposedException => "connection",
                _ => "server",
            });
            _logger.CallFailed(operation, sessionId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, e);
            throw new RunLeaseUnavailableException(sessionId, e);
        }
    }

    private static void Observe(Task call)
    {
        // An abandoned call may still fault later; observe it so it never surfaces as an unobserved task exception.
        if (!call.IsCompleted)
        {
            _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private void Record(string operation, long started, string? error)
    {
        _metrics.Measure(
            _metrics.Duration,
            (operation, Stopwatch.GetElapsedTime(started)),
            static (h, x) => h.Record(x.Item2.TotalSeconds, new KeyValuePair<string, object?>(RedisLeaseMetrics.OperationTag, x.operation)));
        if (error is not null)
        {
            _metrics.Measure(
                _metrics.Failures,
                (operation, error),
                static (c, x) => c.Add(1, new KeyValuePair<string, object?>(RedisLeaseMetrics.OperationTag, x.operation), new KeyValuePair<string, object?>(RedisLeaseMetrics.ErrorTag, x.error)));
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
