using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Leasing;

/// <summary>Why the fencing token matters: a resource that checks it refuses a paused old owner's writes after a takeover.</summary>
public sealed class FencingTests
{
    private const string Session = "s1";

    [Fact]
    public async Task FencedTranscript_PausedOldOwnerWritesAfterTakeover_WriteRefused()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        var transcript = new FencedTranscript();
        RunHandle old = await a.Registry.StartAsync(Session);
        transcript.TryAppend(old.FencingToken, "a: turn 1").Should().BeTrue();

        // Host a freezes (no renew reaches the store); its lease lapses and host b takes the session over.
        cluster.Store.CrashHost("a");
        cluster.Time.Advance(LeaseCluster.Ttl);
        using RunHandle takeover = await b.Registry.StartAsync(Session);
        transcript.TryAppend(takeover.FencingToken, "b: turn 2").Should().BeTrue();

        // Host a wakes and its provider, unaware, writes with the token it was given.
        bool lateWrite = transcript.TryAppend(old.FencingToken, "a: late output");

        lateWrite.Should().BeFalse("the token is older than the one the transcript has seen");
        transcript.Entries.Should().Equal("a: turn 1", "b: turn 2");
        old.IsCurrent.Should().BeFalse("host a stopped trusting its lease at its local validity end");
    }

    [Fact]
    public async Task FencedTranscript_SameOwnerWritesRepeatedly_Accepted()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        var transcript = new FencedTranscript();
        using RunHandle run = await a.Registry.StartAsync(Session);

        transcript.TryAppend(run.FencingToken, "1").Should().BeTrue();
        transcript.TryAppend(run.FencingToken, "2").Should().BeTrue();

        transcript.Entries.Should().Equal("1", "2");
    }

    /// <summary>The resource side of fencing: it remembers the largest token it accepted and refuses older ones.</summary>
    private sealed class FencedTranscript
    {
        private readonly Lock _lock = new();
        private long _fence;

        public List<string> Entries { get; } = [];

        public bool TryAppend(long fencingToken, string entry)
        {
            lock (_lock)
            {
                if (fencingToken < _fence)
                {
                    return false;
                }

                _fence = fencingToken;
                Entries.Add(entry);
                return true;
            }
        }
    }
}
