using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The seed scenario: a provider that hangs and ignores cancellation, a heartbeat ticker whose
/// ticks are dropped while the zombie owns the session, the watchdog's eviction at timeout + grace, the owed
/// heartbeat, and the next tick running again. All time is the FakeTimeProvider's.
/// </summary>
public sealed class EndToEndTests
{
    private const string Session = "chat-42";

    /// <summary>
    /// (timeout s, grace s, tick s). The first row is the library's defaults with the seed bug's 30 s ticker; the
    /// second is the sample's short setup; the third puts the eviction instant between two ticks.
    /// </summary>
    public static TheoryData<bool, int, int, int> Scenarios()
    {
        var data = new TheoryData<bool, int, int, int>();
        foreach (bool useRunAsync in new[] { false, true })
        {
            data.Add(useRunAsync, 600, 30, 30);
            data.Add(useRunAsync, 3, 2, 1);
            data.Add(useRunAsync, 100, 15, 30);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public async Task HungProvider_HeartbeatTicks_DroppedUntilEvictionThenOwedOnceAndNextTickRunsNow(bool useRunAsync, int timeoutSeconds, int graceSeconds, int tickSeconds)
    {
        TimeSpan timeout = TimeSpan.FromSeconds(timeoutSeconds);
        TimeSpan grace = TimeSpan.FromSeconds(graceSeconds);
        TimeSpan tick = TimeSpan.FromSeconds(tickSeconds);
        using var p = new PolicyFixture(new RunSupervisorOptions { RunTimeout = timeout, GracePeriod = grace });

        // What the host does with the owed signal: fire the missed heartbeat at once, through the policy.
        var deliveredOnOwed = new List<QueueDecision>();
        p.Policy.HeartbeatOwed += (_, e) => deliveredOnOwed.Add(p.Heartbeat(e.SessionId));

        using Hung hung = StartHungRun(p, useRunAsync);
        DateTimeOffset start = p.Time.GetUtcNow();
        DateTimeOffset evictAt = start + timeout + grace;

        // Tick until the first tick at or after the eviction instant; every earlier tick must be dropped.
        int expectedDrops = 0;
        QueueDecision decision;
        while (true)
        {
            p.Time.Advance(tick);
            bool evicted = p.Time.GetUtcNow() >= evictAt;
            p.Registry.IsActive(Session).Should().Be(!evicted, "at {0} the zombie is evicted only from {1} on", p.Time.GetUtcNow() - start, evictAt - start);

            if (!evicted)
            {
                p.Owed.Should().BeEmpty("nothing is owed while the zombie still owns the session");
            }

            if (p.Time.GetUtcNow() >= start + timeout)
            {
                // The abort was sent at the deadline; the provider ignores it and stays pending.
                hung.Token.IsCancellationRequested.Should().BeTrue();
                hung.Provider.Task.IsCompleted.Should().BeFalse();
            }

            decision = p.Heartbeat(Session);
            if (evicted)
            {
                break;
            }

            expectedDrops++;
            decision.Should().Be(new QueueDecision(QueueAction.Drop, QueueDecisionReasons.HeartbeatWhileBusy));
            p.Policy.GetDroppedHeartbeats(Session).Should().Be(expectedDrops, "the count grows by one per dropped tick");
        }

        expectedDrops.Should().Be(
            (int)Math.Ceiling((timeout + grace) / tick) - 1,
            "exactly the ticks strictly before the eviction instant are dropped");

        // Evicted (inside the Advance that reached the eviction instant), owed once with the full count, the owed
        // heartbeat delivered at once, and the regular tick right after runs too.
        (RunEndedEventArgs Args, bool StillRegistered) ended = p.F.Ended.Should().ContainSingle().Subject;
        ended.Args.RunId.Should().Be(hung.RunId);
        ended.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
        ended.StillRegistered.Should().BeFalse();
        if (hung.Handle is not null)
        {
            hung.Handle.Status.Should().Be(RunStatus.Evicted);
            hung.Handle.IsCurrent.Should().BeFalse();
            (await hung.Handle.Completion.WaitAsync(TimeSpan.FromSeconds(10))).Should().Be(RunEndReason.ForceEvicted);
        }

        p.Owed.Should().ContainSingle().Which.Should().BeEquivalentTo(new { SessionId = Session, DroppedHeartbeats = expectedDrops });
        deliveredOnOwed.Should().Equal(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        decision.Should().Be(new QueueDecision(QueueAction.RunNow, QueueDecisionReasons.Idle));
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(0);

        // The zombie's task is quarantined, not forgotten; the caller of RunAsync is not left hanging.
        p.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(hung.RunId);
        if (hung.Call is not null)
        {
            RunEvictedException evictedEx = (await hung.Call.Invoking(c => c.WaitAsync(TimeSpan.FromSeconds(10)))
                .Should().ThrowAsync<RunEvictedException>()).Which;
            evictedEx.SessionId.Should().Be(Session);
            evictedEx.RunId.Should().Be(hung.RunId);
        }

        // The session is usable again: a new run starts and heartbeats are counted afresh for it.
        using (RunHandle next = p.Registry.Start(Session))
        {
            p.Heartbeat(Session).Action.Should().Be(QueueAction.Drop);
            p.Policy.GetDroppedHeartbeats(Session).Should().Be(1);
        }

        p.Owed.Select(e => e.DroppedHeartbeats).Should().Equal(expectedDrops, 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HungProvider_DefaultOptions_LogTellsTheStoryInOrder(bool useRunAsync)
    {
        // Default options (10 min timeout, 30 s grace) with a 30 s ticker: ticks 1..19 before the deadline,
        // tick 20 at the deadline itself (the timer fires first inside Advance, then the tick is dropped),
        // eviction at 10:30 inside the Advance of tick 21.
        using var p = new PolicyFixture(new RunSupervisorOptions());
        using Hung hung = StartHungRun(p, useRunAsync);

        for (int i = 0; i < 21; i++)
        {
            p.Time.Advance(TimeSpan.FromSeconds(30));
            p.Heartbeat(Session);
        }

        string[] story = [.. p.F.Logs
            .Select(r => r.Id.Name!)
            .Where(n => n is "HeartbeatDropped" or "RunTimedOut" or "RunForceEvicted" or "HeartbeatOwed")];
        string[] expected =
        [
            .. Enumerable.Repeat("HeartbeatDropped", 19),
            "RunTimedOut",
            "HeartbeatDropped",
            "RunForceEvicted",
            "HeartbeatOwed",
        ];
        story.Should().Equal(expected);

        // One line each answers "why did no heartbeat fire?" and "when did it come back?".
        FakeLogRecord timedOut = p.F.LogsWithEvent("RunTimedOut").Single();
        timedOut.Level.Should().Be(LogLevel.Warning);
        timedOut.GetStructuredStateValue("SessionId").Should().Be(Session);
        timedOut.GetStructuredStateValue("Age").Should().Be(TimeSpan.FromMinutes(10).ToString());

        FakeLogRecord evicted = p.F.LogsWithEvent("RunForceEvicted").Single();
        evicted.Level.Should().Be(LogLevel.Warning);
        evicted.GetStructuredStateValue("RunId").Should().Be(hung.RunId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        evicted.GetStructuredStateValue("Age").Should().Be(TimeSpan.FromSeconds(630).ToString());

        p.F.LogsWithEvent("HeartbeatDropped").Last().GetStructuredStateValue("DroppedHeartbeats").Should().Be("20");
        p.F.LogsWithEvent("HeartbeatOwed").Single().GetStructuredStateValue("DroppedHeartbeats").Should().Be("20");
    }

    [Fact]
    public async Task HungProvider_SettlesLongAfterEviction_LeavesLedgerAndDoesNotTouchTheNewRun()
    {
        using var p = new PolicyFixture(new RunSupervisorOptions());
        using Hung hung = StartHungRun(p, useRunAsync: true);
        p.DropHeartbeats(Session, 1);
        p.Time.Advance(TimeSpan.FromSeconds(630));
        p.Owed.Should().ContainSingle();
        await hung.Call.Invoking(c => c!.WaitAsync(TimeSpan.FromSeconds(10))).Should().ThrowAsync<RunEvictedException>();
        using RunHandle next = p.Registry.Start(Session);
        p.DropHeartbeats(Session, 1);

        // Five minutes later (still inside the new run's own deadline) the dead connection finally errors out.
        p.Time.Advance(TimeSpan.FromMinutes(5));
        hung.Provider.SetException(new IOException("connection reset"));

        p.Registry.AbandonedCount.Should().Be(0);
        p.F.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle()
            .Which.GetStructuredStateValue("Lateness").Should().Be(TimeSpan.FromMinutes(5).ToString());
        next.IsCurrent.Should().BeTrue("the zombie's late settlement must not release the session's new run");
        p.Registry.IsActive(Session).Should().BeTrue();
        p.Owed.Should().ContainSingle("only the eviction signalled an owed heartbeat; the late settlement is not a run end");
        p.Policy.GetDroppedHeartbeats(Session).Should().Be(1);
    }

    private static Hung StartHungRun(PolicyFixture p, bool useRunAsync)
    {
        // The broken SDK: a task that never settles and never looks at the token it was given.
        var provider = new TaskCompletionSource<string>();
        if (useRunAsync)
        {
            var invoked = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<string> call = p.Registry.RunAsync(Session, ct =>
            {
                invoked.SetResult(ct);
                return provider.Task;
            });

            // RunAsync keeps its handle to itself; the run is observed through the registry instead.
            p.Registry.TryGetRun(Session, out RunInfo? info).Should().BeTrue();

            // The provider is invoked on the thread pool: wait until it has been called (and returned its task).
            invoked.Task.Wait(TestTime.HangGuard).Should().BeTrue("RunAsync invokes the provider");
            CancellationToken seen = invoked.Task.Result;
            seen.CanBeCanceled.Should().BeTrue("RunAsync passes the run's abort token to the provider");
            return new Hung(info!.RunId, Handle: null, provider, seen, call);
        }

        RunHandle run = p.Registry.Start(Session);
        run.Attach(provider.Task);
        return new Hung(run.RunId, run, provider, run.AbortToken, Call: null);
    }

    private sealed record Hung(long RunId, RunHandle? Handle, TaskCompletionSource<string> Provider, CancellationToken Token, Task<string>? Call) : IDisposable
    {
        public void Dispose()
        {
            // Let the zombie settle so nothing lingers past the test.
            Provider.TrySetResult("late");

            // A test that does not await the RunAsync call still observes its outcome (RunEvictedException): the
            // suite-wide UnobservedTaskExceptionGuard fails the run on any unobserved task exception.
            Call?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
