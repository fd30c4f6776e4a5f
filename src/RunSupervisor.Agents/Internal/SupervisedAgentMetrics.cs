using System.Diagnostics.Metrics;

namespace RunSupervisor.Agents;

/// <summary>
/// The supervised agent's instruments, created on its registry's meter (<c>RunSupervisor</c>): an agent has no
/// disposal of its own, so its instruments live as long as the registry, and registries (and tests) never see each
/// other's measurements through <c>MetricCollector</c>.
/// </summary>
internal sealed class SupervisedAgentMetrics
{
    public const string UnsupervisedRunsName = "runsupervisor.agent.unsupervised_runs";
    public const string StreamingTag = "runsupervisor.agent.streaming";

    private static readonly KeyValuePair<string, object?> Streaming = new(StreamingTag, true);
    private static readonly KeyValuePair<string, object?> NotStreaming = new(StreamingTag, false);

    public SupervisedAgentMetrics(ActiveRunRegistry registry)
    {
        UnsupervisedRuns = registry.Metrics.Meter.CreateCounter<long>(
            UnsupervisedRunsName,
            "{run}",
            "Agent turns that passed through a supervised agent unsupervised because they had no session id.");
    }

    public Counter<long> UnsupervisedRuns { get; }

    public void RecordUnsupervised(bool streaming) => UnsupervisedRuns.Add(1, streaming ? Streaming : NotStreaming);
}
