using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace RunSupervisor;

/// <summary>
/// Runs that left the registry while their provider was still pending, oldest first. It holds small
/// records only (never handles, token sources or closures), so a zombie provider that never settles
/// costs one record until the cap forgets it. Written only under the run table's gate (asserted); <see cref="Count"/>
/// may be read without it.
/// </summary>
internal sealed class AbandonedRunLedger
{
    private readonly Lock _gate;
    private readonly int _capacity;
    private readonly LinkedList<AbandonedRunInfo> _order = new();
    private readonly Dictionary<long, LinkedListNode<AbandonedRunInfo>> _byRunId = [];

    private int _count;

    public AbandonedRunLedger(int capacity, Lock gate)
    {
        _capacity = capacity;
        _gate = gate;
    }

    /// <summary>Gets the number of runs in the ledger; lock-free.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Adds a run; returns the oldest entry it had to forget to stay within the cap, if any.</summary>
    public AbandonedRunInfo? Add(AbandonedRunInfo info)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        AbandonedRunInfo? forgotten = null;
        if (_order.Count >= _capacity)
        {
            LinkedListNode<AbandonedRunInfo> oldest = _order.First!;
            _order.RemoveFirst();
            _byRunId.Remove(oldest.Value.RunId);
            forgotten = oldest.Value;
        }

        _byRunId.Add(info.RunId, _order.AddLast(info));
        Volatile.Write(ref _count, _order.Count);
        return forgotten;
    }

    public bool TryRemove(long runId, [NotNullWhen(true)] out AbandonedRunInfo? info)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        if (_byRunId.Remove(runId, out LinkedListNode<AbandonedRunInfo>? node))
        {
            _order.Remove(node);
            Volatile.Write(ref _count, _order.Count);
            info = node.Value;
            return true;
        }

        info = null;
        return false;
    }

    /// <summary>Gets the entries, oldest first; under the gate.</summary>
    public AbandonedRunInfo[] ToArray()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Reads of the list happen under the gate.");
        return [.. _order];
    }
}
