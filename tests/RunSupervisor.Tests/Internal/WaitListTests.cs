using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The list the admission queue keeps its waiting starts in (internal): first in, first out, threaded through the
/// starts themselves, so a start can leave from anywhere in O(1), and a start can be in its session's list and its
/// lane's at once without either disturbing the other.
/// </summary>
public sealed class WaitListTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void AddLast_ThreeStarts_EnumeratesOldestFirstAndCountsThem()
    {
        var list = new WaitList(lane: false);
        PendingStart[] starts = [Pending(_registry), Pending(_registry), Pending(_registry)];

        foreach (PendingStart start in starts)
        {
            list.AddLast(start);
        }

        list.Should().Equal(starts, ReferenceEquals);
        list.Count.Should().Be(3);
        ((object?)list.First).Should().BeSameAs(starts[0]);
        ((object?)list.Last).Should().BeSameAs(starts[2]);
        starts.Should().OnlyContain(start => start.IsQueued && !start.IsReady, "a session list threads only the session links");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Remove_AStartAtAnyPlace_KeepsTheOthersInOrder(int removed)
    {
        var list = new WaitList(lane: false);
        PendingStart[] starts = [Pending(_registry), Pending(_registry), Pending(_registry)];
        foreach (PendingStart start in starts)
        {
            list.AddLast(start);
        }

        list.Remove(starts[removed]);

        PendingStart[] rest = starts.Where((_, i) => i != removed).ToArray();
        list.Should().Equal(rest, ReferenceEquals);
        list.Count.Should().Be(2);
        ((object?)list.First).Should().BeSameAs(rest[0]);
        ((object?)list.Last).Should().BeSameAs(rest[1]);
        starts[removed].IsQueued.Should().BeFalse();
        ((object?)starts[removed].SessionLinks.Previous).Should().BeNull("a start that left keeps no neighbour alive");
        ((object?)starts[removed].SessionLinks.Next).Should().BeNull();
    }

    [Fact]
    public void Remove_TheOnlyStart_LeavesTheListEmptyAndReadyForMore()
    {
        var list = new WaitList(lane: true);
        PendingStart start = Pending(_registry);
        list.AddLast(start);

        list.Remove(start);

        list.Should().BeEmpty();
        list.Count.Should().Be(0);
        ((object?)list.First).Should().BeNull();
        ((object?)list.Last).Should().BeNull();
        start.IsReady.Should().BeFalse();

        list.AddLast(start);
        list.Should().Equal(new[] { start }, ReferenceEquals);
    }

    [Fact]
    public void AddLastAndRemove_OneStartInASessionListAndALaneList_EachListKeepsItsOwnOrder()
    {
        var session = new WaitList(lane: false);
        var lane = new WaitList(lane: true);
        PendingStart first = Pending(_registry);
        PendingStart second = Pending(_registry);
        session.AddLast(first);
        session.AddLast(second);
        lane.AddLast(second);
        lane.AddLast(first);

        lane.Remove(second);

        session.Should().Equal(new[] { first, second }, ReferenceEquals);
        lane.Should().Equal(new[] { first }, ReferenceEquals);
        second.IsQueued.Should().BeTrue("leaving the lane is not leaving the session's queue");
        second.IsReady.Should().BeFalse();
    }

    [Fact]
    public void GetEnumerator_Reset_StartsAgainFromTheOldest()
    {
        var list = new WaitList(lane: false);
        PendingStart first = Pending(_registry);
        PendingStart second = Pending(_registry);
        list.AddLast(first);
        list.AddLast(second);
        using WaitList.Enumerator walk = list.GetEnumerator();

        walk.MoveNext().Should().BeTrue();
        walk.MoveNext().Should().BeTrue();
        walk.MoveNext().Should().BeFalse();
        walk.Reset();

        walk.MoveNext().Should().BeTrue();
        ((object?)walk.Current).Should().BeSameAs(first);
    }
}
