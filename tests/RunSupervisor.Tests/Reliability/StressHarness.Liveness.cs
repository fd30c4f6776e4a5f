using System.Collections.Concurrent;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The stress harness's liveness operations and checks: progress reports, idle timeouts, and the runs the watchdog must
/// have aborted by now. Instants are the registry's monotonic ticks (read through its own clock), so they compare exactly.
/// </summary>
internal sealed partial class StressHarness
{
    private readonly ConcurrentQueue<string> _stampAnomalies = new();

    /// <summary>Reports progress on one of the worker's runs: the idle clock restarts, the deadline never moves.</summary>
    private void ReportProgressOne(Random random, List<RunRecord> held)
    {
        if (held.Count == 0)
        {
            return;
        }

        RunRecord record = held[random.Next(held.Count)];
        RunEntry entry = record.Handle.Entry;

        // Only this worker extends the deadlines of the runs it holds, so nothing else moves this one meanwhile.
        long deadline = entry.DeadlineTicks;
        long before = _registry.NowTicks();
        record.Handle.ReportProgress();
        if (entry.DeadlineTicks != deadline)
        {
            Violation($"run {record.Handle.RunId}: ReportProgress moved the deadline from {deadline} to {entry.DeadlineTicks}");
        }

        record.LastReportTicks = before;

        // The watchdog reads the last progress under the registry's lock and aborts in the same hold, so once a call
        // that takes that lock has returned, a run still running has not been judged idle on anything older than this
        // report (only this worker reports on it): its idle clock starts here at the earliest.
        _ = _registry.GetQueueSnapshot();
        if (record.Handle.Status == RunStatus.Running)
        {
            record.IdleFloorTicks = Math.Max(record.IdleFloorTicks, entry.LastProgressTicks);
        }

        Count("progress reports");
    }

    /// <summary>
    /// While the registry is still: no report is lost, and no run is still running past its deadline or its idle instant
    /// (the fake clock fires the watchdog as it passes them). <see langword="null"/> when that holds.
    /// </summary>
    private string? CheckLivenessModel()
    {
        if (_fake is null)
        {
            return null;
        }

        long now = _registry.NowTicks();
        foreach (RunRecord record in _records.Values)
        {
            RunEntry entry = record.Handle.Entry;
            long progress = entry.LastProgressTicks;
            if (progress < entry.StartedAtTicks || progress < record.LastReportTicks)
            {
                return $"run {entry.RunId}: last progress at {progress}, before its start {entry.StartedAtTicks} or its last report {record.LastReportTicks}";
            }

            if (record.Handle.Status != RunStatus.Running)
            {
                continue;
            }

            if (now >= entry.DeadlineTicks + _slack.Ticks)
            {
                return $"run {entry.RunId} still running at {now}, past its deadline {entry.DeadlineTicks} + {_slack}";
            }

            if (entry.IdleTicks > 0 && now >= progress + entry.IdleTicks + _slack.Ticks)
            {
                return $"run {entry.RunId} still running at {now} with no progress since {progress}, past its idle timeout {TimeSpan.FromTicks(entry.IdleTicks)} + {_slack}";
            }
        }

        return null;
    }

    /// <summary>
    /// Once the model is consistent: moves the idle floor of running runs on, and checks each ended run once. A stalled run
    /// ends Stalled (or ForceEvicted) only with an idle timeout, and was not aborted before its idle instant.
    /// </summary>
    private void AdvanceIdleRecords()
    {
        // Taking the registry's lock orders every report of the round before any later idle judgement (see ReportProgressOne).
        _ = _registry.GetQueueSnapshot();
        foreach (RunRecord record in _records.Values)
        {
            if (record.EndChecked)
            {
                continue;
            }

            RunEntry entry = record.Handle.Entry;
            if (!_ended.TryGetValue(entry.RunId, out RunEndedEventArgs? end))
            {
                if (record.Handle.Status == RunStatus.Running)
                {
                    record.IdleFloorTicks = Math.Max(record.IdleFloorTicks, entry.LastProgressTicks);
                }

                continue;
            }

            if (end.Reason == RunEndReason.Stalled || (end.Reason == RunEndReason.ForceEvicted && end.Detail?.Contains("(no progress for ", StringComparison.Ordinal) == true))
            {
                CheckStalledEnd(record, entry, end);
            }

            record.EndChecked = true;
        }
    }

    private void CheckStalledEnd(RunRecord record, RunEntry entry, RunEndedEventArgs end)
    {
        if (entry.IdleTicks == 0)
        {
            Violation($"run {entry.RunId} ended {end.Reason} ('{end.Detail}') without an idle timeout");
            return;
        }

        string idle = $"no progress for {TimeSpan.FromTicks(entry.IdleTicks)}";
        if (end.Reason == RunEndReason.Stalled ? end.Detail != idle : end.Detail?.Contains($"({idle})", StringComparison.Ordinal) != true)
        {
            Violation($"run {entry.RunId} ended {end.Reason} with detail '{end.Detail}' for its idle timeout ('{idle}' expected)");
        }

        // The eviction instant is fixed when the abort happens, at the abort's instant plus the grace period, and no
        // later abort or drain moves it: so it tells when the watchdog declared the run stalled, whatever the thread
        // timing. That instant is never before the last progress the watchdog could have seen plus the idle timeout.
        long abortedAt = entry.EvictAtTicks - entry.GraceTicks;
        long idleInstant = record.IdleFloorTicks + entry.IdleTicks;
        if (abortedAt < idleInstant)
        {
            Violation($"run {entry.RunId} was aborted as stalled at {abortedAt}, before its idle instant {idleInstant} (idle timeout {TimeSpan.FromTicks(entry.IdleTicks)})");
        }

        // The end's own stamp comes from a clock reading taken before the registry's lock, so it may precede the abort it
        // follows.
        if (entry.EndedAtTicks < idleInstant)
        {
            StampAnomaly("stalled end before its idle instant", $"run {entry.RunId} ended {end.Reason} at {entry.EndedAtTicks}, before its idle instant {idleInstant} ('{end.Detail}')");
        }

        Count(end.Reason == RunEndReason.Stalled ? "stalled" : "evicted after stalling");
    }

    /// <summary>
    /// A registry instant stamped from a clock reading older than what it stamps: the registry reads the clock before it
    /// takes its lock, and a thread can be held up in between while others move on, so the registry must clamp such
    /// stamps. A violation (only reported, with <see cref="StressSettings.StrictStampsVariable"/> = 0).
    /// </summary>
    private void StampAnomaly(string kind, string message)
    {
        Count($"stale stamps: {kind}");
        _stampAnomalies.Enqueue(message);
        if (StressSettings.StrictStamps)
        {
            Violation(message);
        }
    }

    /// <summary>At the end, once every run has ended: each is checked against its idle timeout.</summary>
    private void FinishIdleRecords()
    {
        if (_fake is not null)
        {
            AdvanceIdleRecords();
            ThrowIfViolations();
        }
    }
}
