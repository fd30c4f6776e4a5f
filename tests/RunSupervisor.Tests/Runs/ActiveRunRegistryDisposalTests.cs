using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Disposing the registry: every run ends, every member afterwards throws <see cref="ObjectDisposedException"/>
/// (or answers, for the read-only ones), and the watchdog's timer and the meter are released.
/// </summary>
public sealed class ActiveRunRegistryDisposalTests
{
    private const string Session = "s1";


    public static TheoryData<string> PublicMembers =>
    [
        "ActiveCount", "AbandonedCount", "Start", "TryStart", "IsActive", "TryGetRun", "GetActiveRuns",
        "GetAbandonedRuns", "TryAbort", "WaitForRunEndAsync", "DrainAsync", "RunAsync<T>", "RunAsync",
    ];

    [Theory]
    [MemberData(nameof(PublicMembers))]
    public void PublicMember_AfterRegistryDisposed_ThrowsObjectDisposed(string member)
    {
        using var f = new RegistryFixture();
        f.Registry.Start("s1"); // so members that act on a run have one to (not) act on
        f.Registry.Dispose();

        f.Registry.Invoking(r => RegistryMemberCalls.CallAfterDispose(r, member)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task Dispose_RunsInEveryState_AbortsAndEndsEachOnceWithReasonAborted()
    {
        using var f = new RegistryFixture();

        // One run past its deadline (aborting, its grace timer pending) ...
        RunHandle timedOut = f.Registry.Start("timed-out");
        f.Time.Advance(RegistryFixture.Timeout);
        timedOut.Status.Should().Be(RunStatus.Aborting);

        // ... one running with a provider that never settles, one explicitly aborted, one plain running.
        RunHandle hanging = f.Registry.Start("hanging");
        var provider = new TaskCompletionSource();
        hanging.Attach(provider.Task);
        RunHandle aborted = f.Registry.Start("aborted");
        aborted.Abort();
        RunHandle running = f.Registry.Start("running");
        RunHandle[] runs = [timedOut, hanging, aborted, running];

        f.Registry.Dispose();

        runs.Should().OnlyContain(r => r.AbortToken.IsCancellationRequested);
        runs.Should().OnlyContain(r => r.Status == RunStatus.Ended && !r.IsCurrent);
        foreach (RunHandle run in runs)
        {
            (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        }

        f.Ended.Select(e => e.Args.RunId).Should().BeEquivalentTo(runs.Select(r => r.RunId));
        f.Ended.Should().OnlyContain(e => e.Args.Reason == RunEndReason.Aborted && !e.StillRegistered);

        // Late settles and releases after the registry is gone end nothing a second time.
        provider.SetResult();
        foreach (RunHandle run in runs)
        {
            run.Dispose();
            run.Abort().Should().BeFalse();
        }

        f.Ended.Should().HaveCount(runs.Length);
        f.LogsWithEvent("RunEnded").Should().HaveCount(runs.Length);
    }

    [Fact]
    public void Dispose_ThenAdvancePastEveryDeadline_NoTimerFires()
    {
        using var f = new RegistryFixture();
        RunHandle timedOut = f.Registry.Start("timed-out");
        f.Time.Advance(RegistryFixture.Timeout);
        f.Registry.Start("hanging").Attach(new TaskCompletionSource().Task);
        f.Registry.Start("aborted").Abort();
        f.Registry.Start("running");
        int timedOutLogs = f.LogsWithEvent("RunTimedOut").Count();
        timedOutLogs.Should().Be(1, "the first run passed its deadline before the registry was disposed");

        f.Registry.Dispose();
        int endedAtDispose = f.Ended.Count;
        int logsAtDispose = f.Logs.Count;

        // Far past every deadline and grace period, in steps and in one jump.
        f.Time.Advance(RegistryFixture.Grace);
        f.Time.Advance(RegistryFixture.Timeout);
        f.Time.Advance(TimeSpan.FromDays(30));

        f.Ended.Should().HaveCount(endedAtDispose);
        f.LogsWithEvent("RunTimedOut").Should().HaveCount(timedOutLogs);
        f.LogsWithEvent("RunForceEvicted").Should().BeEmpty();
        f.Logs.Should().HaveCount(logsAtDispose);
        timedOut.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void Dispose_Twice_SecondCallIsNoOp()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        f.Registry.Dispose();
        int logs = f.Logs.Count;

        f.Registry.Invoking(r => r.Dispose()).Should().NotThrow();

        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(run.RunId);
        f.Logs.Should().HaveCount(logs);
    }

    [Fact]
    public async Task DisposeAsync_WithActiveRun_EndsRunAbortedAndDisposesRegistry()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");

        await f.Registry.DisposeAsync();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Registry.Invoking(r => r.IsActive("s1")).Should().Throw<ObjectDisposedException>();
        await f.Registry.Invoking(r => r.DisposeAsync().AsTask()).Should().NotThrowAsync();
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public async Task Dispose_WaiterOnRun_ResolvesTrue()
    {
        using var f = new RegistryFixture();
        f.Registry.Start("s1");
        Task<bool> waiter = f.Registry.WaitForRunEndAsync("s1", TestTime.WaitTimeout);

        f.Registry.Dispose();

        (await waiter.WaitAsync(TestTime.HangGuard)).Should().BeTrue();
    }

    [Fact]
    public void Dispose_WithArmedWatchdog_DisposesItsTimer()
    {
        var time = new TimerTrackingTimeProvider(DateTimeOffset.UnixEpoch);
        var registry = new ActiveRunRegistry(new RunSupervisorOptions(), time);
        registry.Start(Session);
        time.ArmedTimers.Should().Be(1, "the watchdog is armed for the run's deadline");

        registry.Dispose();

        time.ArmedTimers.Should().Be(0, "the registry's disposal stops its timer");
    }

    [Fact]
    public void Dispose_Registry_CompletesItsMeterInstruments()
    {
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), new FakeTimeProvider());
        Meter meter = registry.Metrics.RunsStarted.Meter;
        int completed = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
            MeasurementsCompleted = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    Interlocked.Increment(ref completed);
                }
            },
        };
        listener.Start();

        registry.Dispose();

        completed.Should().Be(16, "the registry disposes its meter, which completes its sixteen instruments (the lease ones exist without a store too, so every host exports the same series)");
    }

    [Fact]
    public async Task Dispose_StartWaitingForASessionHeldElsewhere_FailsItWithoutWaitingForThePoll()
    {
        using var cluster = new LeaseCluster();
        LeaseCluster.Host a = cluster.AddHost("a");
        LeaseCluster.Host b = cluster.AddHost("b");
        using RunHandle remote = await a.Registry.StartAsync("s1");
        Task<RunHandle> waiting = b.Registry.StartAsync("s1", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(5) }).AsTask();
        waiting.IsCompleted.Should().BeFalse("host a holds the session");

        // The clock does not move: only the disposal itself can wake the start before its next poll.
        b.Registry.Dispose();

        await FluentActions.Awaiting(() => waiting.Guard()).Should().ThrowAsync<ObjectDisposedException>();
    }
}
