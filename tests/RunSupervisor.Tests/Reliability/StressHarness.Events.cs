using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's handlers of the registry's and the policy's events: orderings that are only visible while the event is raised are checked here.</summary>
internal sealed partial class StressHarness
{
    private readonly ConcurrentDictionary<string, long> _owedFromQueue = new(StringComparer.Ordinal);

    private void OnRunEnded(object? sender, RunEndedEventArgs e)
    {
        if (_registry.FindEntry(e.SessionId)?.RunId == e.RunId)
        {
            Violation($"RunEnded for run {e.RunId} raised while it was still registered");
        }

        if (_endedCount.AddOrUpdate(e.RunId, 1, static (_, n) => n + 1) > 1)
        {
            Violation($"RunEnded raised more than once for run {e.RunId}");
        }

        _ended[e.RunId] = e;
        CheckEndDetail(e);
        if (_admission && e.Reason == RunEndReason.Superseded)
        {
            _supersededEnds.Enqueue(e);
            if (ReplacementNamedBy(e) is long replacement)
            {
                // Raised before the replacing start's own task completes, so known by the time it is seen admitted.
                _replacers.TryAdd(replacement, 0);
            }
        }

        if (e.Duration < TimeSpan.Zero)
        {
            EndOrderAnomaly($"run {e.RunId}: RunEnded with a negative duration {e.Duration} ({e.Reason}, '{e.Detail}')");
        }

        if (_startedAt.TryGetValue(e.RunId, out DateTimeOffset startedAt) && e.EndedAt < startedAt)
        {
            EndOrderAnomaly($"run {e.RunId}: RunEnded.EndedAt {e.EndedAt:O} is before its StartedAt {startedAt:O} ({e.Reason}, '{e.Detail}')");
        }

        if (_records.TryGetValue(e.RunId, out RunRecord? record))
        {
            if (record.Handle.Completion.IsCompleted)
            {
                Violation($"run {e.RunId}: Completion completed before RunEnded was raised");
            }

            CheckEndedAt(record.Handle, e);
        }

        _endingRun.Value = e.RunId;
    }

    private void OnHeartbeatOwed(object? sender, HeartbeatOwedEventArgs e)
    {
        // Owed at a run's end (raised right after RunEnded, on the same thread), or when a waiting start that failed left
        // its session idle: the run noted by this thread's last RunEnded is the one whose end this is, if it is this
        // session's and nothing was owed for it yet; otherwise a start left the queue, bounded at the end by the failed starts.
        long runId = _endingRun.Value;
        _endingRun.Value = 0;
        bool fromRunEnd = _ended.TryGetValue(runId, out RunEndedEventArgs? ended) && ended.SessionId == e.SessionId && !_owedCount.ContainsKey(runId);
        if (!fromRunEnd && _admission)
        {
            _owedFromQueue.AddOrUpdate(e.SessionId, 1, static (_, n) => n + 1);
        }
        else if (!fromRunEnd)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' not raised from that session's run end");
        }
        else if (_owedCount.AddOrUpdate(runId, 1, static (_, n) => n + 1) > 1)
        {
            Violation($"HeartbeatOwed raised more than once for the end of run {runId}");
        }

        if (e.DroppedHeartbeats <= 0)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' with {e.DroppedHeartbeats} dropped heartbeats");
        }

        if (fromRunEnd && _registry.FindEntry(e.SessionId) is not null && !_registry.IsDisposed)
        {
            // Not a violation by itself (a new run may start right after the end), but it must not be the run that ended.
            if (_registry.FindEntry(e.SessionId)?.RunId == runId)
            {
                Violation($"HeartbeatOwed raised while run {runId} still owned '{e.SessionId}'");
            }
        }

        Interlocked.Add(ref _owedTotal, e.DroppedHeartbeats);
    }

    /// <summary>
    /// <see cref="RunEndedEventArgs.Detail"/> says why the run ended, in the words of its reason: none for a completed
    /// run, the deadline for a timeout, the missing progress for a stall, the replacement for a supersede (a preemption
    /// when a foreground start replaced a background run), the grace period for an eviction, the fault for a faulted
    /// provider, and some reason for an abort, never a watchdog's words nor a caller's token (the harness gives RunAsync
    /// none and a start's token only covers its wait). Whether a supersede had to be a preemption depends on which runs
    /// were background, known once every start of the round is recorded, so it is judged at the round's check. The
    /// harness runs no lease store, so a lost lease is itself a violation.
    /// </summary>
    private void CheckEndDetail(RunEndedEventArgs e)
    {
        string? detail = e.Detail;
        bool consistent = e.Reason switch
        {
            RunEndReason.Completed => detail is null,
            RunEndReason.TimedOut => detail?.StartsWith("deadline passed after ", StringComparison.Ordinal) == true,
            RunEndReason.Stalled => detail?.StartsWith("no progress for ", StringComparison.Ordinal) == true,
            RunEndReason.Superseded => detail?.StartsWith("superseded by run ", StringComparison.Ordinal) == true
                || detail?.StartsWith("preempted by run ", StringComparison.Ordinal) == true,
            RunEndReason.ForceEvicted => detail?.StartsWith("evicted: the provider did not settle within ", StringComparison.Ordinal) == true,
            RunEndReason.Faulted => detail?.StartsWith("the provider faulted", StringComparison.Ordinal) == true,
            RunEndReason.Aborted => !string.IsNullOrWhiteSpace(detail)
                && !detail.StartsWith("deadline passed after ", StringComparison.Ordinal)
                && !detail.StartsWith("no progress for ", StringComparison.Ordinal)
                && detail != "the caller's cancellation token was cancelled",
            _ => false,
        };
        if (!consistent)
        {
            Violation($"run {e.RunId}: RunEnded reason {e.Reason} with detail {(detail is null ? "null" : $"'{detail}'")}");
        }
    }

    /// <summary>The end notification and the handle agree on when the run ended, and it ended no earlier than it started.</summary>
    private void CheckEndedAt(RunHandle handle, RunEndedEventArgs e)
    {
        if (handle.EndedAt != e.EndedAt)
        {
            Violation($"run {e.RunId}: RunEnded.EndedAt {e.EndedAt:O} but the handle's EndedAt {handle.EndedAt:O}");
        }

        if (e.EndedAt < handle.StartedAt)
        {
            EndOrderAnomaly($"run {e.RunId}: RunEnded.EndedAt {e.EndedAt:O} is before the handle's StartedAt {handle.StartedAt:O} ({e.Reason}, '{e.Detail}')");
        }
    }

    /// <summary>
    /// Called once, when a worker's run's <see cref="RunHandle.Completion"/> completes: the run has ended exactly once,
    /// before its completion, and with the same reason the completion reports.
    /// </summary>
    private void OnCompletion(long runId, Task<RunEndReason> completion)
    {
        if (!completion.IsCompletedSuccessfully)
        {
            Violation($"run {runId}: Completion ended {completion.Status} instead of with a reason");
            return;
        }

        if (!_ended.TryGetValue(runId, out RunEndedEventArgs? ended))
        {
            Violation($"run {runId}: Completion is {completion.Result} but RunEnded was never raised for it");
        }
        else if (ended.Reason != completion.Result)
        {
            Violation($"run {runId}: Completion is {completion.Result} but RunEnded said {ended.Reason}");
        }

        if (_endedCount.TryGetValue(runId, out int count) && count != 1)
        {
            Violation($"run {runId}: RunEnded raised {count} times before its Completion completed");
        }
    }

    private void Violation(string message) => _violations.Enqueue(message);

    /// <summary>
    /// A run end stamped before the run's start (a negative duration). The registry reads the clock before it takes its
    /// gate, so an end can carry an instant read before the start of the run it ends; that is a finding about the
    /// registry, reported in the stress output and made a violation with <see cref="StressSettings.StrictEndOrderVariable"/>.
    /// </summary>
    private void EndOrderAnomaly(string message)
    {
        _endOrderAnomalies.Enqueue(message);
        if (StressSettings.StrictEndOrder)
        {
            Violation(message);
        }
    }
}
