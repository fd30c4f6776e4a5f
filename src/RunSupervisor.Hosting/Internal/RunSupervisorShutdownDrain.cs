using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RunSupervisor.Hosting;

/// <summary>
/// Drains the <see cref="ActiveRunRegistry"/> when the host stops: aborts every active run, waits for the runs to
/// settle (the watchdog force-evicts those that do not at abort + grace), logs one line per run that was not drained
/// and one summary line. The wait is the grace period plus a second, cut to what is left of the host's shutdown
/// timeout (measured from the host's <see cref="StoppingAsync"/>) minus a second, so the drain reports before the host
/// gives up; the host's shutdown token bounds it too. Whatever is still running then is ended by the registry's disposal.
/// </summary>
internal sealed class RunSupervisorShutdownDrain : IHostedLifecycleService
{
    /// <summary>
    /// Added to the grace period so that the watchdog's eviction, due at the same instant as the end of the wait,
    /// is reported as an eviction rather than a run still running. Small against any shutdown timeout.
    /// </summary>
    internal static readonly TimeSpan EvictionSlack = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Kept free at the end of the host's shutdown window: the drain stops waiting this long before the host's token
    /// fires, so that it reports what it observed instead of being cancelled mid-wait.
    /// </summary>
    internal static readonly TimeSpan ShutdownMargin = TimeSpan.FromSeconds(1);

    internal const string AbortReason = "the host is stopping";

    // Starts waiting for admission are cancelled: a run admitted now would only be aborted by the same shutdown.
    private static readonly DrainOptions EvictOverdue = new() { ForceEvictOverdue = true, CancelWaiting = true };

    private readonly ActiveRunRegistry _registry;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly TimeSpan _gracePeriod;
    private readonly TimeSpan _shutdownTimeout;

    // Written by StoppingAsync, read by StopAsync, which the host calls after StoppingAsync has returned.
    private long? _stoppingAt;

    public RunSupervisorShutdownDrain(
        ActiveRunRegistry registry,
        IOptions<RunSupervisorOptions> options,
        IOptions<HostOptions> hostOptions,
        TimeProvider timeProvider,
        ILogger<RunSupervisorShutdownDrain> logger)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(hostOptions);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _registry = registry;
        _timeProvider = timeProvider;
        _logger = logger;
        _gracePeriod = options.Value.GracePeriod;
        _shutdownTimeout = hostOptions.Value.ShutdownTimeout;
    }

    /// <summary>Gets the longest the drain waits when the whole shutdown window is still ahead.</summary>
    internal TimeSpan FullBudget => Budget(TimeSpan.Zero);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // The registry is created with this service (constructor injection), so its watchdog runs from start-up on.
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // With a window this short, a run that ignores its abort outlives the drain: say so while it can still be fixed.
        TimeSpan required = _gracePeriod + ShutdownMargin;
        if (_shutdownTimeout != Timeout.InfiniteTimeSpan && _shutdownTimeout <= required)
        {
            _logger.ShutdownTimeoutTooShort(_shutdownTimeout, _gracePeriod, ShutdownMargin, FullBudget, required);
        }

        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // The host starts its shutdown timer just before it calls StoppingAsync, and every service's StopAsync (ours runs
    // last when RunSupervisor is registered first) spends the same window: the clock starts here, the drain in StopAsync.
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _stoppingAt ??= _timeProvider.GetTimestamp();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        long started = _timeProvider.GetTimestamp();

        // A host that does not call StoppingAsync gives the whole window to StopAsync.
        TimeSpan budget = Budget(_timeProvider.GetElapsedTime(_stoppingAt ?? started, started));

        // Only read when the drain is cancelled: then the registry's end notifications are all there is to report.
        // Subscribed before the snapshot, so every end of a snapshotted run is seen, whichever thread raises it.
        ConcurrentDictionary<long, RunEndedEventArgs> ends = new();
        void OnRunEnded(object? sender, RunEndedEventArgs e) => ends.TryAdd(e.RunId, e);
        IReadOnlyList<RunInfo> snapshot = [];
        DrainResult? result = null;
        bool cancelled = false;
        try
        {
            _registry.RunEnded += OnRunEnded;
            snapshot = _registry.GetActiveRuns();

            // The drain takes its own list of runs before any abort: a run that settles inside its TryAbort call is
            // still reported, as drained. The runs aborted are those active once it has listed them (it lists them
            // synchronously, as it cancels the waiting starts): a run that ended after the snapshot may have admitted a
            // waiting start first, and the drain waits for that start's run too.
            Task<DrainResult> drain = _registry.DrainAsync(budget, EvictOverdue, cancellationToken);
            IReadOnlyList<RunInfo> listed = _registry.GetActiveRuns();
            snapshot = Union(snapshot, listed);
            AbortAll(listed);

            // The watchdog evicts each aborted run at abort + grace; the drain evicts those already past their deadline.
            result = await drain.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host's shutdown token fired first: report what happened so far; the registry's disposal ends the rest.
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

        IReadOnlyList<DrainedRun> runs = result?.Runs ?? FromEndNotifications(snapshot, ends);
        int drained = 0;
        int evicted = 0;
        int stillRunning = 0;
        foreach (DrainedRun run in runs)
        {
            switch (run.Outcome)
            {
                case DrainOutcome.Drained:
                    drained++;
                    continue;
                case DrainOutcome.Evicted:
                    evicted++;
                    break;
                default:
                    // Aborted (not asked for here) means aborted and not settled yet: still running.
                    stillRunning++;
                    break;
            }

            _logger.ShutdownRunNotDrained(run.SessionId, run.RunId, run.Outcome, run.Reason, run.Detail);
        }

        int abandoned = AbandonedCountOrZero();
        LogLevel level = evicted == 0 && stillRunning == 0 && abandoned == 0 && !cancelled ? LogLevel.Information : LogLevel.Warning;
        TimeSpan elapsed = _timeProvider.GetElapsedTime(started);
        _logger.ShutdownDrainSummary(level, elapsed, budget, runs.Count, drained, evicted, stillRunning, abandoned, cancelled);
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The drain's wait after <paramref name="elapsed"/> of the host's shutdown window has gone: grace + slack, cut to
    /// what is left of the window minus the margin, never negative.
    /// </summary>
    internal TimeSpan Budget(TimeSpan elapsed)
    {
        TimeSpan wanted = _gracePeriod + EvictionSlack;
        if (_shutdownTimeout == Timeout.InfiniteTimeSpan)
        {
            return wanted;
        }

        TimeSpan left = _shutdownTimeout - elapsed - ShutdownMargin;
        return left <= TimeSpan.Zero ? TimeSpan.Zero : left < wanted ? left : wanted;
    }

    /// <summary>The cancelled drain's report: each snapshotted run as its end notification describes it, or still running.</summary>
    private static DrainedRun[] FromEndNotifications(IReadOnlyList<RunInfo> snapshot, ConcurrentDictionary<long, RunEndedEventArgs> ends)
    {
        var runs = new DrainedRun[snapshot.Count];
        for (int i = 0; i < snapshot.Count; i++)
        {
            RunInfo run = snapshot[i];
            runs[i] = ends.TryGetValue(run.RunId, out RunEndedEventArgs? end)
                ? new DrainedRun(run.SessionId, run.RunId, end.Reason, end.Detail, end.Reason == RunEndReason.ForceEvicted ? DrainOutcome.Evicted : DrainOutcome.Drained)
                : new DrainedRun(run.SessionId, run.RunId, Reason: null, Detail: null, DrainOutcome.StillRunning);
        }

        return runs;
    }

    /// <summary>The runs of both snapshots, each once (by run id), in the first's order and then the second's.</summary>
    private static List<RunInfo> Union(IReadOnlyList<RunInfo> first, IReadOnlyList<RunInfo> second)
    {
        var seen = new HashSet<long>(first.Select(static r => r.RunId));
        List<RunInfo> union = [.. first];
        union.AddRange(second.Where(r => seen.Add(r.RunId)));
        return union;
    }

    private void AbortAll(IReadOnlyList<RunInfo> runs)
    {
        try
        {
            // By run id: a run that replaced the snapshotted one since is not ours to abort.
            foreach (RunInfo run in runs)
            {
                _registry.TryAbort(run.SessionId, run.RunId, AbortReason);
            }
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: the disposal ends every run, and the pending drain completes from their ends.
        }
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
