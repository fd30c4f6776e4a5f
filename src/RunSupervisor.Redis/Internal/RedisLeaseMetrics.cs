using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace RunSupervisor.Redis;

/// <summary>
/// The instruments of the meter <see cref="MeterName"/>. Each store owns one meter instance, as each registry does in
/// the core, so tests never see another store's measurements; listeners that subscribe by name see them all.
/// </summary>
/// <remarks>
/// The store records through <see cref="Measure"/>, never on an instrument directly: a <see cref="MeterListener"/>'s
/// callback runs on the recording thread, and its exception must not turn a lease taken into a failed acquire or drop a
/// notification being delivered.
/// </remarks>
internal sealed class RedisLeaseMetrics : IDisposable
{
    public const string MeterName = "RunSupervisor.Redis";
    public const string OperationTag = "runsupervisor.redis.operation";
    public const string ErrorTag = "error.type";

    private readonly Meter _meter;
    private readonly Action<string, Exception> _listenerFailed;

    public RedisLeaseMetrics(ILogger logger)
    {
        _listenerFailed = (instrument, ex) => logger.MeterListenerFailed(instrument, ex);
        _meter = new Meter(MeterName, typeof(RedisLeaseMetrics).Assembly.GetName().Version?.ToString());
        Duration = _meter.CreateHistogram<double>("runsupervisor.redis.duration", "s", "Round trip of each store call (a renew batch is one call), tagged by operation; failed calls included.");
        Failures = _meter.CreateCounter<long>("runsupervisor.redis.failures", "{call}", "Store calls that failed, tagged by operation and error type (timeout, connection, server).");
        Renewed = _meter.CreateCounter<long>("runsupervisor.redis.leases.renewed", "{lease}", "Leases renewed.");
        Lost = _meter.CreateCounter<long>("runsupervisor.redis.leases.lost", "{lease}", "Leases a renew found missing or taken over.");
        Acquired = _meter.CreateCounter<long>("runsupervisor.redis.leases.acquired", "{lease}", "Leases taken, supersedes included.");
        Released = _meter.CreateCounter<long>("runsupervisor.redis.leases.released", "{lease}", "Leases released by their holder (compare-and-delete that found its token).");
        Notifications = _meter.CreateCounter<long>("runsupervisor.redis.notifications", "{message}", "Lease notifications received from pub/sub and delivered.");
    }

    public Histogram<double> Duration { get; }

    public Counter<long> Failures { get; }

    public Counter<long> Renewed { get; }

    public Counter<long> Lost { get; }

    public Counter<long> Acquired { get; }

    public Counter<long> Released { get; }

    public Counter<long> Notifications { get; }

    /// <summary>Records on <paramref name="instrument"/> if anyone listens; a listener's exception is logged, never thrown.</summary>
    public void Measure<TInstrument, TState>(TInstrument instrument, TState state, Action<TInstrument, TState> record)
        where TInstrument : Instrument
        => GuardedInstruments.Measure(instrument, state, record, _listenerFailed);

    public void Dispose() => _meter.Dispose();
}
