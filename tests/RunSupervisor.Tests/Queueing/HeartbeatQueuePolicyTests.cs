using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// The queue policy's decision table, row by row, for every <see cref="QueueMode"/> and every flag that must not
/// matter: a heartbeat for a busy session is dropped, everything else follows the mode.
/// </summary>
public sealed class HeartbeatQueuePolicyTests
{
    private const string Session = "s1";

    private static readonly QueueMode[] AllModes = Enum.GetValues<QueueMode>();

    private static readonly bool[] Bools = [false, true];

    /// <summary>The three ways a session is "not idle-and-empty": busy, idle with queued follow-ups, or both.</summary>
    private static readonly (bool Busy, bool Queued)[] NotIdleStates = [(true, false), (false, true), (true, true)];

    public static TheoryData<QueueMode, bool, bool, bool> IdleRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach (bool heartbeat in Bools)
            {
                foreach (bool reset in Bools)
                {
                    foreach (bool followup in Bools)
                    {
                        data.Add(mode, heartbeat, reset, followup);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(IdleRows))]
    public void Resolve_IdleAndNothingQueued_RunsNowWhateverTheOtherFlags(QueueMode mode, bool heartbeat, bool reset, bool followup)
    {
        using var p = new PolicyFixture();

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, heartbeat, mode, HasQueuedFollowups: false, reset, followup));

        decision.Should().Be(new QueueDecision(QueueAction.RunNow, "session idle"));
        decision.Reason.Should().Be(QueueDecisionReasons.Idle);
        AssertNothingDropped(p);
    }

    public static TheoryData<QueueMode, bool, bool, bool, bool> HeartbeatRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                foreach (bool reset in Bools)
                {
                    foreach (bool followup in Bools)
                    {
                        data.Add(mode, busy, queued, reset, followup);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(HeartbeatRows))]
    public void Resolve_HeartbeatWhileBusyOrQueued_DropsLogsAndCounts(QueueMode mode, bool busy, bool queued, bool reset, bool followup)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: true, mode, queued, reset, followup));

        // The heartbeat row comes before reset/follow-up/mode: none of them can rescue a heartbeat.
        string expectedReason = queued ? QueueDecisionReasons.HeartbeatWhileQueued : QueueDecisionReasons.HeartbeatWhileBusy;
        decision.Should().Be(new QueueDecision(QueueAction.Drop, expectedReason));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(1);
        FakeLogRecord line = p.F.LogsWithEvent("HeartbeatDropped").Should().ContainSingle().Subject;
        line.Id.Id.Should().Be(10);
        line.GetStructuredStateValue("Reason").Should().Be(expectedReason);
    }

    public static TheoryData<QueueMode, bool, bool, bool> ResetRows()
    {
        var data = new TheoryData<QueueMode, bool, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                foreach (bool followup in Bools)
                {
                    data.Add(mode, busy, queued, followup);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ResetRows))]
    public void Resolve_ResetWhileBusyOrQueued_RunsNowBeforeFollowupOrMode(QueueMode mode, bool busy, bool queued, bool followup)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued, ResetTriggered: true, followup));

        decision.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Reset));
        AssertNothingDropped(p);
    }

    public static TheoryData<QueueMode, bool, bool> NotIdleRowsPerMode()
    {
        var data = new TheoryData<QueueMode, bool, bool>();
        foreach (QueueMode mode in AllModes)
        {
            foreach ((bool busy, bool queued) in NotIdleStates)
            {
                data.Add(mode, busy, queued);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(NotIdleRowsPerMode))]
    public void Resolve_FollowupRequestedWhileBusyOrQueued_EnqueuesInEveryModeIncludingInterrupt(QueueMode mode, bool busy, bool queued)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued, ResetTriggered: false, ShouldFollowup: true));

        decision.Should().Be(new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.Followup));
        AssertNothingDropped(p);
    }

    [Theory]
    [MemberData(nameof(NotIdleRowsPerMode))]
    public void Resolve_PlainMessageWhileBusyOrQueued_EnqueuesForQueueingModesAndRunsNowForInterrupt(QueueMode mode, bool busy, bool queued)
    {
        using var p = new PolicyFixture();
        using RunHandle? run = busy ? p.Registry.Start(Session) : null;

        QueueDecision decision = p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: false, mode, queued));

        // Written out rather than derived from the policy: a plain message for a busy session is queued in every mode
        // that queues (Steer, SteerBacklog, Followup, Collect); only Interrupt runs it now, ahead of the busy run.
        QueueDecision expected = mode switch
        {
            QueueMode.Steer or QueueMode.SteerBacklog or QueueMode.Followup or QueueMode.Collect
                => new QueueDecision(QueueAction.Enqueue, QueueDecisionReasons.QueueMode),
            QueueMode.Interrupt => new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Interrupt),
            _ => throw new InvalidOperationException($"A new QueueMode {mode} needs a row in this test."),
        };
        decision.Should().Be(expected);
        AssertNothingDropped(p);
    }

    [Fact]
    public void QueueDecisionReasons_EveryRow_HasADistinctReason()
    {
        // Hosts match on the reason to tell the rows apart; two rows sharing a phrase would make that impossible.
        string[] reasons =
        [
            QueueDecisionReasons.Idle, QueueDecisionReasons.HeartbeatWhileBusy, QueueDecisionReasons.HeartbeatWhileQueued,
            QueueDecisionReasons.Reset, QueueDecisionReasons.Followup, QueueDecisionReasons.QueueMode, QueueDecisionReasons.Interrupt,
        ];

        reasons.Should().OnlyHaveUniqueItems().And.NotContain(r => string.IsNullOrWhiteSpace(r));
    }

    private static void AssertNothingDropped(PolicyFixture p)
    {
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
        p.F.LogsWithEvent("HeartbeatDropped").Should().BeEmpty();
    }
}
