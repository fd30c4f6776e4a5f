using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RunSupervisor.Hosting;

/// <summary>
/// Drains the <see cref="ActiveRunRegistry"/> when the host stops: aborts every active run, waits up to the grace
/// period for the runs to settle (the watchdog force-evicts those that do not), and logs one summary line. The wait
/// is bounded by the host's shutdown token; whatever is still running then is ended by the registry's disposal.
/// </summary>
internal sealed class RunSupervisorShutdownDrain : IHostedService
{
    /// <summary>
    /// Added to the grace period so that the watchdog's eviction, due at the same instant as the end of the wait,
    /// is reported as an eviction rather than a run still running. Small against any shutdown timeout.
    /// </summary>
    internal static readonly TimeSpan EvictionSlack = TimeSpan.FromSeconds(1);

    internal const string AbortReason = "the host is stopping";

    private static readonly DrainOptions EvictOverdue = new() { ForceEvictOverdue = true };

    private readonly ActiveRunRegistry _registry;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly TimeSpan _gracePeriod;

    public RunSupervisorShutdownDrain(ActiveRunRegistry registry, IOptions<RunSupervisorOptions> options, TimeProvider timeProvider, ILogger<RunSupervisorShutdownDrain> logger)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _registry = registry;
        _timeProvider = timeProvider;
        _logger = logger;
        _gracePeriod = options.Value.GracePeriod;
    }

    // The registry is created with this service (constructor injection), so its watchdog runs from start-up on.
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        long started = _timeProvider.GetTimestamp();

        // Subscribed before the snapshot: every end of a snapshotted run is seen, whichever thread raises it.
        ConcurrentDictionary<long, RunEndReason> ends = new();
        void OnRunEnded(object? sender, RunEndedEventArgs e) => ends.TryAdd(e.RunId, e.Reason);
        _registry.RunEnded += OnRunEnded;
        IReadOnlyList<RunInfo> runs = [];
        bool cancelled = false;
        try
        {
            runs = _registry.GetActiveRuns();
            if (runs.Count > 0)
            {
                // By run id: a run that replaced the snapshotted one since is not ours to abort.
                foreach (RunInfo run in runs)
                {
                    _registry.TryAbort(run.SessionId, run.RunId, AbortReason);
                }

                // The watchdog evicts each aborted run at abort + grace; the drain evicts those already past their deadline.
                await _registry.DrainAsync(_gracePeriod + EvictionSlack, EvictOverdue, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host's shutdown timeout elapsed: report what happened so far; the registry's disposal ends the rest.
            cancelled = true;
        }
        catch (ObjectDisposedException)
        {
            // The registry was disposed before the host stopped (by its owner): there is nothing left to drain.
        }
        finally
        {
            _registry.RunEnded -= OnRunEnded;
        }

        int drained = 0;
        int evicted = 0;
        foreach (RunInfo run in runs)
        {
            if (ends.TryGetValue(run.RunId, out RunEndReason reason))
            {
                if (reason == RunEndReason.ForceEvicted)
                {
                    evicted++;
                }
                else
                {
                    drained++;
                }
            }
        }

        int stillRunning = runs.Count - drained - evicted;
        int abandoned = AbandonedCountOrZero();
        LogLevel level = evicted == 0 && stillRunning == 0 && abandoned == 0 && !cancelled ? LogLevel.Information : LogLevel.Warning;
        TimeSpan elapsed = _timeProvider.GetElapsedTime(started);
        _logger.ShutdownDrainSummary(level, elapsed, runs.Count, drained, evicted, stillRunning, abandoned, cancelled);
    }

    private int AbandonedCountOrZero()
    {
        try
        {
            return _registry.AbandonedCount;
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
    }
}
