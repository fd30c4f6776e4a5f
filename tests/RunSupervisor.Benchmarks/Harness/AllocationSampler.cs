using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// Attributes allocations to types by listening to the runtime's <c>GCAllocationTick</c> event, raised about every
/// 100 KB allocated, with the type of the object that crossed the threshold and the bytes since the last tick. Over
/// millions of operations the per-type sums converge on each type's share of the bytes; no profiler needed.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const int AllocationTickEventId = 10;
    private const EventKeywords GcKeyword = (EventKeywords)0x1;

    private readonly ConcurrentDictionary<string, long> _bytesByType = new(StringComparer.Ordinal);
    private volatile bool _recording;

    /// <summary>Gets the sampled bytes by type name since <see cref="Start"/>.</summary>
    public IReadOnlyDictionary<string, long> BytesByType => _bytesByType;

    /// <summary>Clears the samples and starts recording.</summary>
    public void Start()
    {
        _bytesByType.Clear();
        _recording = true;
    }

    /// <summary>Stops recording once the events raised so far have been delivered (they arrive asynchronously).</summary>
    public void Stop()
    {
        Thread.Sleep(1_500);
        _recording = false;
    }

    /// <inheritdoc/>
    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == RuntimeSource)
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    /// <inheritdoc/>
    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.EventId != AllocationTickEventId || eventData.PayloadNames is null)
        {
            return;
        }

        string type = "?";
        long amount = 0;
        for (int i = 0; i < eventData.PayloadNames.Count; i++)
        {
            switch (eventData.PayloadNames[i])
            {
                case "TypeName":
                    type = eventData.Payload![i] as string ?? "?";
                    break;
                case "AllocationAmount64":
                    amount = Convert.ToInt64(eventData.Payload![i], System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case "AllocationAmount" when amount == 0:
                    amount = Convert.ToInt64(eventData.Payload![i], System.Globalization.CultureInfo.InvariantCulture);
                    break;
            }
        }

        _bytesByType.AddOrUpdate(type, amount, (_, total) => total + amount);
    }
}
