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

    // Allocated by Stop: large enough to raise an allocation event at once, of a type nothing else allocates.
    private const int MarkerLength = 200_000;
    private const string MarkerTypeName = "DrainMarker[]";

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, long> _bytesByType = new(StringComparer.Ordinal);
    private readonly ManualResetEventSlim _drained = new();
    private volatile bool _recording;

    /// <summary>Gets the sampled bytes by type name since <see cref="Start"/>.</summary>
    public IReadOnlyDictionary<string, long> BytesByType => _bytesByType;

    /// <summary>Clears the samples and starts recording.</summary>
    public void Start()
    {
        _bytesByType.Clear();
        _recording = true;
    }

    /// <summary>
    /// Stops recording once the events raised so far have been delivered. They arrive asynchronously but in order, so
    /// this allocates a marker that raises an event of its own and waits for that event.
    /// </summary>
    /// <exception cref="TimeoutException">The marker's event did not arrive within 30 s.</exception>
    public void Stop()
    {
        _drained.Reset();
        GC.KeepAlive(new DrainMarker[MarkerLength]);
        if (!_drained.Wait(DrainTimeout))
        {
            throw new TimeoutException($"The allocation event of the drain marker did not arrive within {DrainTimeout.TotalSeconds} s.");
        }

        _recording = false;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        base.Dispose();
        _drained.Dispose();
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

        if (type.EndsWith(MarkerTypeName, StringComparison.Ordinal))
        {
            _drained.Set();
            return;
        }

        _bytesByType.AddOrUpdate(type, amount, (_, total) => total + amount);
    }

    private sealed class DrainMarker;
}
