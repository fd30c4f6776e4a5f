using System.Diagnostics.Metrics;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// The chat client's instruments on the meter <see cref="MeterName"/>, the core's meter name. Like the core's
/// registry, each client owns one meter instance, so clients (and tests) never see each other's measurements
/// through <c>MetricCollector</c>; listeners that subscribe by meter name see them all.
/// </summary>
internal sealed class SupervisedChatClientMetrics : IDisposable
{
    public const string MeterName = "RunSupervisor";
    public const string UnsupervisedCallsName = "runsupervisor.chat.unsupervised_calls";
    public const string StreamingTag = "runsupervisor.chat.streaming";

    private static readonly KeyValuePair<string, object?> Streaming = new(StreamingTag, true);
    private static readonly KeyValuePair<string, object?> NotStreaming = new(StreamingTag, false);

    private readonly Meter _meter;

    public SupervisedChatClientMetrics()
    {
        _meter = new Meter(MeterName, typeof(SupervisedChatClientMetrics).Assembly.GetName().Version?.ToString());
        UnsupervisedCalls = _meter.CreateCounter<long>(
            UnsupervisedCallsName,
            "{call}",
            "Chat calls that passed through a supervised chat client unsupervised because they had no session id.");
    }

    public Counter<long> UnsupervisedCalls { get; }

    public void RecordUnsupervised(bool streaming) => UnsupervisedCalls.Add(1, streaming ? Streaming : NotStreaming);

    public void Dispose() => _meter.Dispose();
}
