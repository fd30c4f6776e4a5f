using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// An indexed binary min-heap of runs ordered by their next watchdog instant (<see cref="RunHandle.DueTicks"/>).
/// Each run remembers its slot, so removal and re-keying are O(log n) and a released run is dropped at once
/// instead of lingering (and keeping its handle alive) until its deadline. Not thread-safe: the registry
/// only touches it under its gate.
/// </summary>
internal sealed class DeadlineQueue
{
    private const int MinCapacity = 16;
    private RunHandle[] _items = new RunHandle[MinCapacity];

    public int Count { get; private set; }

    /// <summary>Gets the earliest due instant in ticks of the registry's monotonic clock, or <see cref="long.MaxValue"/> when empty.</summary>
    public long MinDueTicks => Count == 0 ? long.MaxValue : _items[0].DueTicks;

    public RunHandle Peek()
    {
        Debug.Assert(Count > 0, "Peek on an empty queue.");
        return _items[0];
    }

    public void Add(RunHandle run, long dueTicks)
    {
        Debug.Assert(run.QueueIndex < 0, "A run is queued at most once.");
        if (Count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        run.DueTicks = dueTicks;
        int index = Count++;
        _items[index] = run;
        run.QueueIndex = index;
        SiftUp(index);
    }

    public void Update(RunHandle run, long dueTicks)
    {
        Debug.Assert(run.QueueIndex >= 0 && _items[run.QueueIndex] == run, "Only a queued run can be re-keyed.");
        long previous = run.DueTicks;
        run.DueTicks = dueTicks;
        if (dueTicks < previous)
        {
            SiftUp(run.QueueIndex);
        }
        else
        {
            SiftDown(run.QueueIndex);
        }
    }

    public void Remove(RunHandle run)
    {
        int index = run.QueueIndex;
        if (index < 0)
        {
            return;
        }

        Debug.Assert(_items[index] == run, "A run's slot points back at it.");
        int last = --Count;
        RunHandle moved = _items[last];
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
        RunHandle item = _items[index];
        while (index > 0)
        {
            int parent = (index - 1) / 2;
            RunHandle parentItem = _items[parent];
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
        RunHandle item = _items[index];
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

            RunHandle childItem = _items[child];
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
