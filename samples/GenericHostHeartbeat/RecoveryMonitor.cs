using System.Globalization;
using RunSupervisor;

namespace GenericHostHeartbeat;

/// <summary>
/// Decides the sample's exit code: the session recovered when a run was force-evicted and a later run started on the
/// session it freed. "Later" is judged by run id, the registry's fencing token: ids increase with every start, and a
/// session holds one run at a time, so a run with a higher id than the evicted one started after the eviction. That
/// makes the verdict independent of the order in which event handlers on different threads happen to run.
/// </summary>
internal sealed class RecoveryMonitor : IDisposable
{
    private readonly ActiveRunRegistry _registry;
    private readonly Lock _gate = new();
    private readonly List<long> _evicted = [];
    private readonly List<long> _started = [];

    public RecoveryMonitor(ActiveRunRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _registry.RunEnded += OnRunEnded;
    }

    /// <summary>Gets a value indicating whether a run started after the first force eviction.</summary>
    public bool Recovered
    {
        get
        {
            lock (_gate)
            {
                return _evicted.Count > 0 && _started.Exists(id => id > _evicted[0]);
            }
        }
    }

    /// <summary>Records that the heartbeat started the run with <paramref name="runId"/>.</summary>
    public void RunStarted(long runId)
    {
        if (runId <= 0)
        {
            return;
        }

        lock (_gate)
        {
            _started.Add(runId);
        }
    }

    /// <summary>Describes what was seen, for the verdict line.</summary>
    public string Describe()
    {
        lock (_gate)
        {
            if (_evicted.Count == 0)
            {
                return string.Format(CultureInfo.InvariantCulture, "no run was force-evicted ({0} run(s) started)", _started.Count);
            }

            // Counts and ranges, not lists: an interactive run may go on for hours.
            long first = _evicted[0];
            long[] after = [.. _started.Where(id => id > first).Order()];
            string evicted = _evicted.Count == 1
                ? string.Format(CultureInfo.InvariantCulture, "run {0} was force-evicted", first)
                : string.Format(CultureInfo.InvariantCulture, "{0} runs were force-evicted (the first: run {1})", _evicted.Count, first);
            return after.Length == 0
                ? string.Format(CultureInfo.InvariantCulture, "{0}, but no run started on the session after run {1} was evicted", evicted, first)
                : string.Format(CultureInfo.InvariantCulture, "{0}; after run {1} was evicted the heartbeat started {2} more run(s) on the freed session (runs {3}-{4})", evicted, first, after.Length, after[0], after[^1]);
        }
    }

    public void Dispose() => _registry.RunEnded -= OnRunEnded;

    private void OnRunEnded(object? sender, RunEndedEventArgs e)
    {
        if (e.Reason != RunEndReason.ForceEvicted)
        {
            return;
        }

        lock (_gate)
        {
            // Evictions are recorded in any order; keep the first (lowest id) at index 0.
            _evicted.Add(e.RunId);
            _evicted.Sort();
        }
    }
}
