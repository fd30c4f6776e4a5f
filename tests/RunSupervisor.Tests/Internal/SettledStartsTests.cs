using FluentAssertions;
using Xunit;
using static RunSupervisor.Tests.TestSupport.InternalRecords;

namespace RunSupervisor.Tests.Internal;

/// <summary>The starts one transition settled: none, one held inline, or more in a list, always in the order they settled.</summary>
public sealed class SettledStartsTests : IDisposable
{
    private readonly ActiveRunRegistry _registry = new();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public void Default_NothingAdded_IsEmptyAndEnumeratesNothing()
    {
        SettledStarts settled = default;

        settled.IsEmpty.Should().BeTrue();
        Enumerate(settled).Should().BeEmpty();
    }

    [Fact]
    public void Add_OneStart_IsNotEmptyAndEnumeratesIt()
    {
        SettledStarts settled = default;
        PendingStart start = NewStart("a");

        settled.Add(start);

        settled.IsEmpty.Should().BeFalse();
        Enumerate(settled).Should().Equal(start);
    }

    [Fact]
    public void Add_SeveralStarts_EnumeratesThemInTheOrderTheySettled()
    {
        SettledStarts settled = default;
        PendingStart[] starts = [NewStart("a"), NewStart("b"), NewStart("c")];

        foreach (PendingStart start in starts)
        {
            settled.Add(start);
        }

        Enumerate(settled).Should().Equal(starts);
        Enumerate(settled).Should().Equal(starts, "enumerating does not consume");
    }

    [Fact]
    public void RecordReplaced_TwoStartsReplacedRunsInOneTransition_EachKeepsTheRunItReplaced()
    {
        SettledStarts settled = default;
        PendingStart plain = NewStart("a");
        PendingStart first = NewStart("b");
        PendingStart second = NewStart("c");
        Left firstReplaced = new(Entry(_registry, "b", runId: 1), cancel: true, sessionIdle: false, forgotten: null);
        Left secondReplaced = new(Entry(_registry, "c", runId: 2), cancel: true, sessionIdle: false, forgotten: null);

        settled.Add(plain);
        settled.Add(first);
        settled.Add(second);
        settled.RecordReplaced(second, secondReplaced);
        settled.RecordReplaced(first, firstReplaced);

        Enumerate(settled).Should().Equal(plain, first, second);
        settled.ReplacedBy(first).Entry.Should().BeSameAs(firstReplaced.Entry);
        settled.ReplacedBy(second).Entry.Should().BeSameAs(secondReplaced.Entry);
        settled.ReplacedBy(plain).HasLeft.Should().BeFalse("it entered a free session");
    }

    private static List<PendingStart> Enumerate(SettledStarts settled)
    {
        var all = new List<PendingStart>();
        foreach (PendingStart start in settled)
        {
            all.Add(start);
        }

        return all;
    }

    private PendingStart NewStart(string sessionId)
        => Pending(_registry, sessionId, Spec(TimeSpan.FromMinutes(1).Ticks, TimeSpan.FromSeconds(1).Ticks, queueTimeoutTicks: TimeSpan.FromMinutes(1).Ticks, whenBusy: SessionBusyBehavior.Wait));
}
