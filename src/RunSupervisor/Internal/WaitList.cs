using System.Collections;
using System.Diagnostics;

namespace RunSupervisor;

/// <summary>
/// A first-in-first-out list of waiting starts, threaded through the starts themselves: each <see cref="PendingStart"/>
/// carries its links for its session's list and for its lane's, so queueing a start allocates no node. Written only
/// under the run table's gate; <see cref="Count"/> is also read without it.
/// </summary>
internal sealed class WaitList : IEnumerable<PendingStart>
{
    private readonly bool _lane;
    private int _count;

    /// <summary>Initializes a new instance of the <see cref="WaitList"/> class.</summary>
    /// <param name="lane"><see langword="true"/> for a lane's list (threaded through <see cref="PendingStart.LaneLinks"/>); <see langword="false"/> for a session's.</param>
    public WaitList(bool lane) => _lane = lane;

    /// <summary>Gets the oldest start in the list.</summary>
    public PendingStart? First { get; private set; }

    /// <summary>Gets the newest start in the list.</summary>
    public PendingStart? Last { get; private set; }

    /// <summary>Gets the number of starts in the list; may be read without the gate.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Puts <paramref name="start"/> at the end; it must be in no list of this kind.</summary>
    public void AddLast(PendingStart start)
    {
        ref Links links = ref LinksOf(start);
        Debug.Assert(links.List is null, "A start is in one list of a kind at a time.");
        links.List = this;
        links.Previous = Last;
        links.Next = null;
        if (Last is null)
        {
            First = start;
        }
        else
        {
            LinksOf(Last).Next = start;
        }

        Last = start;
        Volatile.Write(ref _count, _count + 1);
    }

    /// <summary>Takes <paramref name="start"/> out; it must be in this list.</summary>
    public void Remove(PendingStart start)
    {
        ref Links links = ref LinksOf(start);
        Debug.Assert(ReferenceEquals(links.List, this), "Only a start in this list leaves it.");
        if (links.Previous is null)
        {
            First = links.Next;
        }
        else
        {
            LinksOf(links.Previous).Next = links.Next;
        }

        if (links.Next is null)
        {
            Last = links.Previous;
        }
        else
        {
            LinksOf(links.Next).Previous = links.Previous;
        }

        links = default;
        Volatile.Write(ref _count, _count - 1);
    }

    /// <summary>Enumerates the list, oldest first, without allocating; the list must not change meanwhile.</summary>
    public Enumerator GetEnumerator() => new(this);

    IEnumerator<PendingStart> IEnumerable<PendingStart>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private ref Links LinksOf(PendingStart start) => ref _lane ? ref start.LaneLinks : ref start.SessionLinks;

    /// <summary>A start's place in one list: the list, and its neighbours there.</summary>
    internal struct Links
    {
        /// <summary>The list the start is in, or <see langword="null"/>.</summary>
        public WaitList? List;

        /// <summary>The start before it.</summary>
        public PendingStart? Previous;

        /// <summary>The start after it.</summary>
        public PendingStart? Next;
    }

    /// <summary>Walks a <see cref="WaitList"/> from its oldest start.</summary>
    internal struct Enumerator : IEnumerator<PendingStart>
    {
        private readonly WaitList _list;
        private PendingStart? _next;

        internal Enumerator(WaitList list)
        {
            _list = list;
            _next = list.First;
            Current = null!;
        }

        /// <inheritdoc/>
        public PendingStart Current { get; private set; }

        readonly object IEnumerator.Current => Current;

        /// <inheritdoc/>
        public bool MoveNext()
        {
            if (_next is null)
            {
                return false;
            }

            Current = _next;
            _next = _list.LinksOf(_next).Next;
            return true;
        }

        /// <inheritdoc/>
        public void Reset() => _next = _list.First;

        /// <inheritdoc/>
        public readonly void Dispose()
        {
        }
    }
}
