using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// The waiting starts that left the queue in one transition (admitted, or given up), to be completed outside the gate.
/// A transition usually settles at most one, so the first is held inline and a list is made only for a second.
/// </summary>
internal struct SettledStarts
{
    private PendingStart? _first;
    private List<PendingStart>? _more;

    // The runs that admitted starts replaced in place (a start that waited for a slot, then superseded or preempted its
    // session's run): rare, so a list only when there is one.
    private List<(PendingStart Start, Left Replaced)>? _replaced;

    /// <summary>Gets a value indicating whether no start settled.</summary>
    public readonly bool IsEmpty => _first is null;

    /// <summary>Adds a start, in the order the starts settled.</summary>
    public void Add(PendingStart start)
    {
        if (_first is null)
        {
            Debug.Assert(_more is null, "The first start is added first.");
            _first = start;
        }
        else
        {
            (_more ??= []).Add(start);
        }
    }

    /// <summary>Records the run an admitted start (already added) replaced, with that run's leaving.</summary>
    public void RecordReplaced(PendingStart start, Left replaced) => (_replaced ??= []).Add((start, replaced));

    /// <summary>Gets the run <paramref name="start"/> replaced when it was admitted, or nothing (<see cref="Left.HasLeft"/> false).</summary>
    public readonly Left ReplacedBy(PendingStart start)
    {
        if (_replaced is not null)
        {
            foreach ((PendingStart Start, Left Replaced) item in _replaced)
            {
                if (ReferenceEquals(item.Start, start))
                {
                    return item.Replaced;
                }
            }
        }

        return default;
    }

    /// <summary>Gets an enumerator over the starts, in the order they settled.</summary>
    public readonly Enumerator GetEnumerator() => new(_first, _more);

    /// <summary>Enumerates the settled starts without allocating.</summary>
    public struct Enumerator
    {
        private readonly PendingStart? _first;
        private readonly List<PendingStart>? _more;
        private int _index;

        internal Enumerator(PendingStart? first, List<PendingStart>? more)
        {
            _first = first;
            _more = more;
            _index = -2;
            Current = null!;
        }

        /// <summary>Gets the current start.</summary>
        public PendingStart Current { get; private set; }

        /// <summary>Moves to the next start.</summary>
        /// <returns><see langword="true"/> while there is one.</returns>
        public bool MoveNext()
        {
            _index++;
            if (_index == -1)
            {
                Current = _first!;
                return _first is not null;
            }

            if (_more is not null && _index < _more.Count)
            {
                Current = _more[_index];
                return true;
            }

            return false;
        }
    }
}
