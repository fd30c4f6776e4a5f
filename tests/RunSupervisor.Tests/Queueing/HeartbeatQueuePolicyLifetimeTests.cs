using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Queueing;

/// <summary>
/// The policy's lifetime and edges: disposal (it stops listening to the registry), bad input, and the race guard
/// (a heartbeat resolved once the run has left the registry runs instead of being dropped).
/// </summary>
public sealed class HeartbeatQueuePolicyLifetimeTests
{
    private const string Session = "s1";

    // ---- Dispose ----

    [Fact]
    public void Dispose_ThenSessionWithDropsBecomesIdle_NoHeartbeatOwed()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        p.Policy.Dispose();
        p.Policy.Dispose(); // idempotent
        run.Dispose();

        p.Owed.Should().BeEmpty();
        p.F.LogsWithEvent("HeartbeatOwed").Should().BeEmpty();
        p.F.Ended.Should().ContainSingle("the registry itself is unaffected by the policy's disposal");
    }

    [Fact]
    public void Resolve_AfterDispose_ThrowsObjectDisposed()
    {
        using var p = new PolicyFixture();
        p.Policy.Dispose();

        Action resolve = () => p.Heartbeat(Session);

        resolve.Should().Throw<ObjectDisposedException>();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Resolve_RegistryDisposed_ThrowsObjectDisposed(bool hasQueuedFollowups)
    {
        // Resolve's XML docs: ObjectDisposedException when "the policy or its registry is disposed".
        using var p = new PolicyFixture();
        p.Registry.Dispose();

        Action resolve = () => p.Policy.Resolve(new QueueRequest(Session, IsHeartbeat: true, HasQueuedFollowups: hasQueuedFollowups));

        resolve.Should().Throw<ObjectDisposedException>();
    }

    // ---- Bad input ----

    public static TheoryData<string?> BadSessionIds() => new() { null, string.Empty, " ", "\t\n", new string('x', ActiveRunRegistry.MaxSessionIdLength + 1) };

    [Theory]
    [MemberData(nameof(BadSessionIds))]
    public void Resolve_BadSessionId_ThrowsArgumentExceptionNamingRequest(string? sessionId)
    {
        using var p = new PolicyFixture();

        Action resolve = () => p.Policy.Resolve(new QueueRequest(sessionId!, IsHeartbeat: true));

        // Null surfaces as ArgumentNullException, which is an ArgumentException.
        resolve.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("request");
    }

    [Fact]
    public void Resolve_SessionIdAtMaxLength_Accepted()
    {
        using var p = new PolicyFixture();
        string longest = new('x', ActiveRunRegistry.MaxSessionIdLength);
        using RunHandle run = p.Registry.Start(longest);

        p.Heartbeat(longest).Action.Should().Be(QueueAction.Drop);
        p.Policy.GetDroppedHeartbeats(longest).Should().Be(1);
    }

    [Theory]
    [MemberData(nameof(BadSessionIds))]
    public void GetDroppedHeartbeats_BadSessionId_ThrowsArgumentExceptionNamingSessionId(string? sessionId)
    {
        using var p = new PolicyFixture();

        Action get = () => p.Policy.GetDroppedHeartbeats(sessionId!);

        var thrown = get.Should().Throw<ArgumentException>().Which;
        thrown.ParamName.Should().Be("sessionId");
        if (sessionId is null)
        {
            thrown.Should().BeOfType<ArgumentNullException>();
        }
    }

    [Fact]
    public void Constructor_NullRegistry_ThrowsArgumentNull()
    {
        Action create = () => _ = new HeartbeatQueuePolicy(null!);

        create.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("registry");
    }

    [Fact]
    public void Constructor_NoLogger_StillCountsDropsAndRaisesOwed()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        var owed = new List<int>();
        policy.HeartbeatOwed += (_, e) => owed.Add(e.DroppedHeartbeats);
        RunHandle run = f.Registry.Start(Session);

        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);
        run.Dispose();

        owed.Should().Equal(1);
    }

    // ---- The race guard: a heartbeat resolved once the run has left the registry runs ----

    [Fact]
    public void Resolve_HeartbeatAfterRunReleased_RunsNowAndIsNotCounted()
    {
        using var p = new PolicyFixture();
        p.Registry.Start(Session).Dispose();

        p.Heartbeat(Session).Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void Resolve_HeartbeatInsideRunEndedBeforePolicyProcessedIt_RunsNowAndOwedCountUnchanged()
    {
        // A RunEnded subscriber registered before the policy runs first: the entry is already gone but the
        // policy has not yet processed the end. A heartbeat resolved there must run, not be dropped (and so
        // must not be added to the count that is about to be signalled as owed).
        using var f = new RegistryFixture();
        QueueDecision? inside = null;
        HeartbeatQueuePolicy? policy = null;
        f.Registry.RunEnded += (_, e) => inside = policy!.Resolve(new QueueRequest(e.SessionId, IsHeartbeat: true));
        policy = new HeartbeatQueuePolicy(f.Registry);
        using HeartbeatQueuePolicy disposePolicy = policy;
        var owed = new List<int>();
        policy.HeartbeatOwed += (_, e) => owed.Add(e.DroppedHeartbeats);
        RunHandle run = f.Registry.Start(Session);
        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);

        run.Dispose();

        inside.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        owed.Should().Equal(1);
        policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void Resolve_HeartbeatFiredFromHeartbeatOwedHandler_RunsNow()
    {
        // What a host does with the signal: fire the missed tick at once. It must not be dropped again.
        using var p = new PolicyFixture();
        QueueDecision? fired = null;
        p.Policy.HeartbeatOwed += (_, e) => fired = p.Heartbeat(e.SessionId);
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);

        run.Dispose();

        fired.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);
    }

    [Fact]
    public void HeartbeatOwedEventArgs_NullSessionId_ThrowsArgumentNull()
        => FluentActions.Invoking(() => new HeartbeatOwedEventArgs(null!, 1)).Should().ThrowExactly<ArgumentNullException>().WithParameterName("sessionId");

    [Fact]
    public void Policy_Disposed_RaisesNoHeartbeatOwedAfterwards()
    {
        using var p = new PolicyFixture();
        RunHandle run = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 2);

        p.Policy.Dispose();
        run.Dispose();

        p.Owed.Should().BeEmpty("a disposed policy no longer listens to the registry");
    }

    [Fact]
    public void Policy_NoHeartbeatOwedSubscriber_RunEndStillResetsTheCountWithoutError()
    {
        using var f = new RegistryFixture();
        using var policy = new HeartbeatQueuePolicy(f.Registry);
        RunHandle run = f.Registry.Start(Session);
        policy.Resolve(new QueueRequest(Session, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);

        run.Dispose();

        policy.GetDroppedHeartbeats(Session).Should().Be(0);
        f.LogsWithEvent("CallbackFailed").Should().BeEmpty();
    }
}
