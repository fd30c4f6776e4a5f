using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The eviction warning and the heartbeat-drop line asserted with FakeLogger, and the EventId
/// table of the internal <c>Log</c> class pinned (ids are a public contract: hosts filter and alert on them).
/// </summary>
public sealed class LoggingTests
{
    /// <summary>The full, pinned table: id, name, level. Never renumber; new messages are appended.</summary>
    private static readonly (int Id, string Name, LogLevel Level)[] PinnedEvents =
    [
        (1, "RunStarted", LogLevel.Debug),
        (2, "RunEnded", LogLevel.Debug),
        (3, "StaleReleaseIgnored", LogLevel.Debug),
        (4, "RunTimedOut", LogLevel.Warning),
        (5, "RunForceEvicted", LogLevel.Warning),
        (6, "RunAborted", LogLevel.Information),
        (7, "RunSuperseded", LogLevel.Information),
        (8, "AbandonedRunSettled", LogLevel.Information),
        (9, "AbandonedRunForgotten", LogLevel.Warning),
        (10, "HeartbeatDropped", LogLevel.Information),
        (11, "HeartbeatOwed", LogLevel.Information),
        (12, "DrainTimedOut", LogLevel.Warning),
        (13, "DrainCompleted", LogLevel.Information),
        (14, "CallbackFailed", LogLevel.Error),
        (15, "AbortCallbackFailed", LogLevel.Error),
        (16, "WatchdogLate", LogLevel.Warning),
        (17, "RunQueued", LogLevel.Debug),
        (18, "RunAdmitted", LogLevel.Debug),
        (19, "QueueTimedOut", LogLevel.Warning),
        (20, "QueueFull", LogLevel.Warning),
        (21, "RunPreempted", LogLevel.Information),
        (22, "RunStalled", LogLevel.Warning),
        (23, "LeaseAcquired", LogLevel.Debug),
        (24, "LeaseHeldElsewhere", LogLevel.Information),
        (25, "LeaseLost", LogLevel.Warning),
        (26, "LeaseStoreUnavailable", LogLevel.Warning),
        (27, "UnfencedStart", LogLevel.Warning),
        (28, "LeaseRenewFailed", LogLevel.Warning),
        (29, "RemoteSupersede", LogLevel.Information),
        (30, "LeaseReleaseFailed", LogLevel.Debug),
        (31, "DrainCancelledWaiting", LogLevel.Information),
        (32, "MeterListenerFailed", LogLevel.Error),
    ];

    public static TheoryData<int, string, LogLevel> PinnedRows()
    {
        var data = new TheoryData<int, string, LogLevel>();
        foreach ((int id, string name, LogLevel level) in PinnedEvents)
        {
            data.Add(id, name, level);
        }

        return data;
    }

    [Fact]
    public void RunForceEvicted_ZombieEvicted_WarningWithSessionRunIdAndAge()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromMinutes(3)); // a run id other than the first, an age independent of the clock's origin
        f.Registry.Start("other").Dispose();
        RunHandle run = f.Registry.Start("s1");
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        FakeLogRecord line = f.LogsWithEvent("RunForceEvicted").Should().ContainSingle().Subject;
        line.Id.Should().Be(new EventId(5, "RunForceEvicted"));
        line.Level.Should().Be(LogLevel.Warning);
        line.Category.Should().Be(typeof(ActiveRunRegistry).FullName);
        line.GetStructuredStateValue("SessionId").Should().Be("s1");
        line.GetStructuredStateValue("RunId").Should().Be(run.RunId.ToString(CultureInfo.InvariantCulture));
        line.GetStructuredStateValue("Age").Should().Be((RegistryFixture.Timeout + RegistryFixture.Grace).ToString());
        line.Message.Should().Contain("'s1'").And.Contain($"Run {run.RunId} ").And.Contain("00:10:30");
    }

    [Fact]
    public void HeartbeatDropped_HeartbeatWhileBusy_InformationWithSessionReasonAndRunningCount()
    {
        using var p = new PolicyFixture();
        using RunHandle run = p.Registry.Start("s1");

        p.Heartbeat("s1");
        p.Heartbeat("s1");
        p.Heartbeat("s1", hasQueuedFollowups: true);

        FakeLogRecord[] lines = [.. p.F.LogsWithEvent("HeartbeatDropped")];
        lines.Should().HaveCount(3);
        lines.Should().OnlyContain(r => r.Id == new EventId(10, "HeartbeatDropped") && r.Level == LogLevel.Information);
        lines.Should().OnlyContain(r => r.Category == typeof(HeartbeatQueuePolicy).FullName);
        lines.Select(r => r.GetStructuredStateValue("SessionId")).Should().AllBe("s1");
        lines.Select(r => r.GetStructuredStateValue("Reason")).Should().Equal(
            QueueDecisionReasons.HeartbeatWhileBusy, QueueDecisionReasons.HeartbeatWhileBusy, QueueDecisionReasons.HeartbeatWhileQueued);
        lines.Select(r => r.GetStructuredStateValue("DroppedHeartbeats")).Should().Equal("1", "2", "3");
        lines[0].Message.Should().Contain("'s1'").And.Contain(QueueDecisionReasons.HeartbeatWhileBusy).And.Contain("1 dropped");
    }

    [Fact]
    public void HeartbeatDropped_NonHeartbeatOrIdleSession_NotLogged()
    {
        // The drop line must mean a heartbeat was really dropped: nothing else writes EventId 10.
        using var p = new PolicyFixture();
        p.Heartbeat("idle");
        using RunHandle run = p.Registry.Start("busy");
        p.Policy.Resolve(new QueueRequest("busy", IsHeartbeat: false, QueueMode.Collect));

        p.F.Logs.Should().NotContain(r => r.Id.Id == 10);
    }

    [Theory]
    [MemberData(nameof(PinnedRows))]
    public void LogClass_PinnedEvent_HasThatIdNameAndLevel(int id, string name, LogLevel level)
    {
        (MethodInfo Method, LoggerMessageAttribute Attribute)[] matches = [.. LogMethods().Where(m => m.Attribute.EventId == id)];

        matches.Should().ContainSingle("EventId {0} belongs to exactly one message", id);
        LoggerMessageAttribute attribute = matches[0].Attribute;
        attribute.EventName.Should().Be(name);
        attribute.Level.Should().Be(level);
        matches[0].Method.Name.Should().Be(name, "the method and the event share one name, so a log line leads to its source");
    }

    [Fact]
    public void LogClass_AllMessages_ExactlyThePinnedTableWithUniqueIdsAndNames()
    {
        (MethodInfo Method, LoggerMessageAttribute Attribute)[] methods = [.. LogMethods()];

        methods.Select(m => m.Attribute.EventId).Should().OnlyHaveUniqueItems();
        methods.Select(m => m.Attribute.EventName).Should().OnlyHaveUniqueItems();
        methods.Select(m => (m.Attribute.EventId, m.Attribute.EventName!, m.Attribute.Level))
            .OrderBy(e => e.EventId)
            .Should().Equal(PinnedEvents, "a new message must be added to this table (and the README) with a new id at the end");
        methods.Should().OnlyContain(m => !string.IsNullOrWhiteSpace(m.Attribute.Message));
    }

    [Fact]
    public void LogClass_EmittedRecords_CarryTheirPinnedIds()
    {
        // The attributes are what the generator compiles in; check a real line of each kind reached here agrees.
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start("s1");
        p.DropHeartbeats("s1", 1);
        run.Abort("test");
        run.Dispose();
        run.Dispose();

        Dictionary<string, int> pinned = PinnedEvents.ToDictionary(e => e.Name, e => e.Id);
        p.F.Logs.Select(r => r.Id.Name).Should().Contain(["RunStarted", "HeartbeatDropped", "RunAborted", "RunEnded", "HeartbeatOwed", "StaleReleaseIgnored"]);
        p.F.Logs.Should().OnlyContain(r => pinned[r.Id.Name!] == r.Id.Id);
    }

    private static IEnumerable<(MethodInfo Method, LoggerMessageAttribute Attribute)> LogMethods()
        => typeof(Log).GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (m.Method, m.Attribute!));
}
