using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's handlers of the registry's and the policy's events: orderings that are only visible while the event is raised are checked here.</summary>
internal sealed partial class StressHarness
{
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
        if (_records.TryGetValue(e.RunId, out RunRecord? record) && record.Handle.Completion.IsCompleted)
        {
            Violation($"run {e.RunId}: Completion completed before RunEnded was raised");
        }

        _endingRun.Value = e.RunId;
    }

    private void OnHeartbeatOwed(object? sender, HeartbeatOwedEventArgs e)
    {
        long runId = _endingRun.Value;
        if (!_ended.TryGetValue(runId, out RunEndedEventArgs? ended) || ended.SessionId != e.SessionId)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' not raised from that session's run end");
        }

        if (_owedCount.AddOrUpdate(runId, 1, static (_, n) => n + 1) > 1)
        {
            Violation($"HeartbeatOwed raised more than once for the end of run {runId}");
        }

        if (e.DroppedHeartbeats <= 0)
        {
            Violation($"HeartbeatOwed for '{e.SessionId}' with {e.DroppedHeartbeats} dropped heartbeats");
        }

        if (_registry.FindEntry(e.SessionId) is not null && !_registry.IsDisposed)
        {
            // Not a violation by itself (a new run may start right after the end), but it must not be the run that ended.
            if (_registry.FindEntry(e.SessionId)?.RunId == runId)
            {
                Violation($"HeartbeatOwed raised while run {runId} still owned '{e.SessionId}'");
            }
        }

        Interlocked.Add(ref _owedTotal, e.DroppedHeartbeats);
    }

    private void Violation(string message) => _violations.Enqueue(message);
}
