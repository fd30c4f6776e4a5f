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
