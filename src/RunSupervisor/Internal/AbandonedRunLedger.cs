namespace RunSupervisor;

/// <summary>
/// Runs that left the registry while their provider was still pending, oldest first. It holds small
/// records only (never handles, token sources or closures), so a zombie provider that never settles
/// costs one record until the cap forgets it. Not thread-safe: the registry uses it under its gate.
/// </summary>
internal sealed class AbandonedRunLedger
{
    private readonly int _capacity;
    private readonly LinkedList<AbandonedRunInfo> _order = new();
    private readonly Dictionary<long, LinkedListNode<AbandonedRunInfo>> _byRunId = [];

    public AbandonedRunLedger(int capacity) => _capacity = capacity;

    public int Count => _order.Count;

    /// <summary>Adds a run; returns the oldest entry it had to forget to stay within the cap, if any.</summary>
    public AbandonedRunInfo? Add(AbandonedRunInfo info)
    {
        AbandonedRunInfo? forgotten = null;
        if (_order.Count >= _capacity)
        {
            LinkedListNode<AbandonedRunInfo> oldest = _order.First!;
            _order.RemoveFirst();
            _byRunId.Remove(oldest.Value.RunId);
            forgotten = oldest.Value;
        }

        _byRunId.Add(info.RunId, _order.AddLast(info));
        return forgotten;
    }

    public bool TryRemove(long runId, out AbandonedRunInfo? info)
    {
        if (_byRunId.Remove(runId, out LinkedListNode<AbandonedRunInfo>? node))
        {
            _order.Remove(node);
            info = node.Value;
            return true;
        }

        info = null;
        return false;
    }

    public AbandonedRunInfo[] ToArray() => [.. _order];
}
