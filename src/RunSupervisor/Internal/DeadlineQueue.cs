using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// An indexed binary min-heap of runs ordered by their next watchdog instant (<see cref="RunEntry.DueTicks"/>, derived
/// from the entry's state: re-key with <see cref="Update(RunEntry)"/> after changing what it is derived from).
/// Each run remembers its slot, so removal and re-keying are O(log n) and a released run is dropped at once
/// instead of lingering (and keeping its entry alive) until its deadline. Not thread-safe: only the run table touches
/// it, under its gate.
/// </summary>
internal sealed class DeadlineQueue
{
    private const int MinCapacity = 16;
    private readonly Lock _gate;
    private RunEntry[] _items = new RunEntry[MinCapacity];

    public DeadlineQueue(Lock gate) => _gate = gate;

    public int Count { get; private set; }

    /// <summary>Gets the earliest due instant in ticks of the registry's monotonic clock, or <see cref="long.MaxValue"/> when empty.</summary>
    public long MinDueTicks => Count == 0 ? long.MaxValue : _items[0].DueTicks;

    public RunEntry Peek()
    {
        Debug.Assert(Count > 0, "Peek on an empty queue.");
        return _items[0];
    }

    public void Add(RunEntry run)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        Debug.Assert(run.QueueIndex < 0, "A run is queued at most once.");
        if (Count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        int index = Count++;
        _items[index] = run;
        run.QueueIndex = index;
        SiftUp(index);
    }

    /// <summary>Restores the heap order after <paramref name="run"/>'s due instant changed, either way.</summary>
    public void Update(RunEntry run)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        Debug.Assert(run.QueueIndex >= 0 && _items[run.QueueIndex] == run, "Only a queued run can be re-keyed.");
        SiftUp(run.QueueIndex);
        SiftDown(run.QueueIndex);
    }

    public void Remove(RunEntry run)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "Writes happen under the gate.");
        int index = run.QueueIndex;
        if (index < 0)
        {
            return;
        }

        Debug.Assert(_items[index] == run, "A run's slot points back at it.");
        int last = --Count;
        RunEntry moved = _items[last];
        _items[last] = null!;
        run.QueueIndex = -1;
        if (index != last)
        {
            _items[index] = moved;
            moved.QueueIndex = index;
            SiftUp(index);
            SiftDown(moved.QueueIndex);
        }

        // Give memory back after a burst (a million runs drained to a few), but not on every small dip.
        if (_items.Length > MinCapacity && Count < _items.Length / 4)
        {
            Array.Resize(ref _items, Math.Max(MinCapacity, _items.Length / 2));
        }
    }

    private void SiftUp(int index)
    {
        RunEntry item = _items[index];
        while (index > 0)
        {
            int parent = (index - 1) / 2;
            RunEntry parentItem = _items[parent];
            if (parentItem.DueTicks <= item.DueTicks)
            {
                break;
            }

            _items[index] = parentItem;
            parentItem.QueueIndex = index;
            index = parent;
        }

        _items[index] = item;
        item.QueueIndex = index;
    }

    private void SiftDown(int index)
    {
        RunEntry item = _items[index];
        int count = Count;
        while (true)
        {
            int child = (2 * index) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && _items[child + 1].DueTicks < _items[child].DueTicks)
            {
                child++;
            }

            RunEntry childItem = _items[child];
            if (item.DueTicks <= childItem.DueTicks)
            {
                break;
            }

            _items[index] = childItem;
            childItem.QueueIndex = index;
            index = child;
        }

        _items[index] = item;
        item.QueueIndex = index;
    }
}
