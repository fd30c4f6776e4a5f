using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>The hosted drain on <c>IHost.StopAsync</c>, on a real Generic Host and a <see cref="FakeTimeProvider"/>.</summary>
public sealed class RunSupervisorShutdownDrainTests
{
    private const string Summary = "ShutdownDrainSummary";
    private const string NotDrained = "ShutdownRunNotDrained";

    [Fact]
    public async Task StopAsync_NoRuns_LogsOneInformationSummaryWithZeroCounts()
    {
        await using TestHost host = await TestHost.StartAsync();

        await host.Host.StopAsync().WaitAsync(TestHost.HangGuard);

        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Id.Id.Should().Be(100);
        summary.Level.Should().Be(LogLevel.Information);
        Counts(summary).Should().Be((0, 0, 0, 0, 0, false));
        summary.GetStructuredStateValue("Budget").Should().Be((TestHost.Grace + RunSupervisorShutdownDrain.EvictionSlack).ToString());
        host.LogsWithEvent(NotDrained).Should().BeEmpty();
    }

    [Fact]
    public async Task StopAsync_RunsThatHonourTheAbort_AbortsThemAndReportsThemDrained()
    {
        await using TestHost host = await TestHost.StartAsync();
        RunHandle a = host.Registry.Start("a");
        RunHandle b = host.Registry.Start("b");
        a.Attach(HonourTokenAsync(a.AbortToken));
        b.Attach(HonourTokenAsync(b.AbortToken));

        await host.Host.StopAsync().WaitAsync(TestHost.HangGuard);

        (await a.Completion).Should().Be(RunEndReason.Aborted);
        (await b.Completion).Should().Be(RunEndReason.Aborted);
        host.LogsWithEvent("RunAborted").Select(r => r.Message).Should().HaveCount(2)
            .And.AllSatisfy(m => m.Should().Contain(RunSupervisorShutdownDrain.AbortReason));
        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Level.Should().Be(LogLevel.Information);
        Counts(summary).Should().Be((2, 2, 0, 0, 0, false));
        host.LogsWithEvent(NotDrained).Should().BeEmpty();
    }

    [Fact]
    public async Task StopAsync_StartWaitingForAdmission_IsCancelledAndNeverRuns()
    {
        await using TestHost host = await TestHost.StartAsync();
        RunHandle busy = host.Registry.Start("a");
        busy.Attach(HonourTokenAsync(busy.AbortToken));
        Task<RunHandle> waiting = host.Registry.StartAsync("a", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();

        await host.Host.StopAsync().WaitAsync(TestHost.HangGuard);

        await FluentActions.Awaiting(() => waiting.WaitAsync(TestHost.HangGuard)).Should().ThrowAsync<OperationCanceledException>();
        host.Registry.ActiveCount.Should().Be(0, "the aborted run's end admitted nothing");
        host.LogsWithEvent("DrainCancelledWaiting").Should().ContainSingle();
    }

    [Fact]
    public async Task StopAsync_RunThatIgnoresTheAbort_ForceEvictsItAtTheGracePeriodAndReportsItAbandoned()
    {
        await using TestHost host = await TestHost.StartAsync();
        RunHandle zombie = host.Registry.Start("zombie");
        zombie.Attach(new TaskCompletionSource().Task);
        RunHandle polite = host.Registry.Start("polite");
        polite.Attach(HonourTokenAsync(polite.AbortToken));
        Task aborted = WhenCancelled(zombie.AbortToken);

        Task stop = host.Host.StopAsync();
        await aborted.WaitAsync(TestHost.HangGuard);

        // The polite provider settles on a thread-pool continuation: let it, before fake time reaches the eviction.
        (await polite.Completion.WaitAsync(TestHost.HangGuard)).Should().Be(RunEndReason.Aborted);
        host.Time.Advance(TestHost.Grace - TimeSpan.FromTicks(1));
        zombie.Status.Should().Be(RunStatus.Aborting, "the grace period has not elapsed yet");
        stop.IsCompleted.Should().BeFalse();

        host.Time.Advance(TimeSpan.FromTicks(1));
        await stop.WaitAsync(TestHost.HangGuard);

        (await zombie.Completion).Should().Be(RunEndReason.ForceEvicted);
        host.Registry.AbandonedCount.Should().Be(1);
        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Level.Should().Be(LogLevel.Warning);
        Counts(summary).Should().Be((2, 1, 1, 0, 1, false));
        FakeLogRecord notDrained = host.LogsWithEvent(NotDrained).Should().ContainSingle().Subject;
        notDrained.Id.Id.Should().Be(102);
        notDrained.Level.Should().Be(LogLevel.Warning);
        notDrained.GetStructuredStateValue("SessionId").Should().Be("zombie");
        notDrained.GetStructuredStateValue("RunId").Should().Be(zombie.RunId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        notDrained.GetStructuredStateValue("Outcome").Should().Be(nameof(DrainOutcome.Evicted));
        notDrained.GetStructuredStateValue("Reason").Should().Be(nameof(RunEndReason.ForceEvicted));
    }

    [Fact]
    public async Task StopAsync_RunWithALongerGraceOverride_IsLeftRunningAfterTheConfiguredGracePeriod()
    {
        await using TestHost host = await TestHost.StartAsync();
        RunHandle run = host.Registry.Start("long", new RunStartOptions { GracePeriod = TimeSpan.FromMinutes(5) });
        Task aborted = WhenCancelled(run.AbortToken);

        Task stop = host.Host.StopAsync();
        await aborted.WaitAsync(TestHost.HangGuard);
        await AdvanceUntilCompletedAsync(host.Time, stop, TestHost.Grace + RunSupervisorShutdownDrain.EvictionSlack);

        run.Status.Should().Be(RunStatus.Aborting);
        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Level.Should().Be(LogLevel.Warning);
        Counts(summary).Should().Be((1, 0, 0, 1, 0, false));
        host.LogsWithEvent(NotDrained).Should().ContainSingle()
            .Which.GetStructuredStateValue("Outcome").Should().Be(nameof(DrainOutcome.StillRunning));
    }

    [Fact]
    public async Task StopAsync_RunAlreadyPastItsDeadline_IsForceEvictedByTheDrain()
    {
        // Timed out long ago with a huge grace override: only the drain's ForceEvictOverdue removes it.
        await using TestHost host = await TestHost.StartAsync();
        RunHandle run = host.Registry.Start("overdue", new RunStartOptions { GracePeriod = TimeSpan.FromDays(1) });
        host.Time.Advance(TestHost.Timeout);
        run.Status.Should().Be(RunStatus.Aborting);

        Task stop = host.Host.StopAsync();
        await AdvanceUntilCompletedAsync(host.Time, stop, TestHost.Grace + RunSupervisorShutdownDrain.EvictionSlack);

        (await run.Completion).Should().Be(RunEndReason.ForceEvicted);
        Counts(host.LogsWithEvent(Summary).Should().ContainSingle().Subject).Should().Be((1, 0, 1, 0, 1, false));

        FakeLogRecord notDrained = host.LogsWithEvent(NotDrained).Should().ContainSingle().Subject;
        notDrained.GetStructuredStateValue("Outcome").Should().Be(nameof(DrainOutcome.Evicted));
        notDrained.GetStructuredStateValue("Detail").Should().Contain("deadline passed after 00:10:00");
    }

    [Fact]
    public async Task StopAsync_ShutdownTokenCancelled_StopsWaitingAndReportsTheRunStillRunning()
    {
        await using TestHost host = await TestHost.StartAsync();
        RunHandle run = host.Registry.Start("zombie");
        Task aborted = WhenCancelled(run.AbortToken);
        using var shutdown = new CancellationTokenSource();

        Task stop = host.Host.StopAsync(shutdown.Token);
        await aborted.WaitAsync(TestHost.HangGuard);
        await shutdown.CancelAsync();
        await stop.WaitAsync(TestHost.HangGuard);

        run.Status.Should().Be(RunStatus.Aborting);
        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Level.Should().Be(LogLevel.Warning);
        Counts(summary).Should().Be((1, 0, 0, 1, 0, true));
        host.LogsWithEvent(NotDrained).Should().ContainSingle()
            .Which.GetStructuredStateValue("Outcome").Should().Be(nameof(DrainOutcome.StillRunning));
    }

    [Fact]
    public async Task StopAsync_ShutdownTokenCancelledAfterAnEviction_ReportsEachRunFromTheRegistrysEnds()
    {
        // Cancelled, the drain has no result: each run the drain saw is reported as the registry's end notification says.
        await using TestHost host = await TestHost.StartAsync();
        RunHandle zombie = host.Registry.Start("zombie");
        zombie.Attach(new TaskCompletionSource().Task);
        RunHandle patient = host.Registry.Start("patient", new RunStartOptions { GracePeriod = TimeSpan.FromDays(1) });
        Task aborted = WhenCancelled(patient.AbortToken);
        using var shutdown = new CancellationTokenSource();

        Task stop = host.Host.StopAsync(shutdown.Token);
        await aborted.WaitAsync(TestHost.HangGuard);
        host.Time.Advance(TestHost.Grace);
        (await zombie.Completion.WaitAsync(TestHost.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        await shutdown.CancelAsync();
        await stop.WaitAsync(TestHost.HangGuard);

        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        Counts(summary).Should().Be((2, 0, 1, 1, 1, true));
        host.LogsWithEvent(NotDrained).Select(r => (r.GetStructuredStateValue("SessionId"), r.GetStructuredStateValue("Outcome")))
            .Should().Equal(("zombie", nameof(DrainOutcome.Evicted)), ("patient", nameof(DrainOutcome.StillRunning)));
    }

    [Fact]
    public async Task StopAsync_RunStartedAfterTheSnapshotOnTheSameSession_IsNotAbortedByRunId()
    {
        // The drain aborts by run id: a run that replaced the one it saw is left alone.
        await using TestHost host = await TestHost.StartAsync();
        RunHandle first = host.Registry.Start("s");
        first.AbortToken.Register(() => host.Registry.Start("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }));

        // The drain waits only for the runs it saw, so it ends with the superseded run and leaves the newcomer alone.
        Task stop = host.Host.StopAsync();
        await AdvanceUntilCompletedAsync(host.Time, stop, TestHost.Grace + RunSupervisorShutdownDrain.EvictionSlack);

        (await first.Completion).Should().Be(RunEndReason.Superseded);
        host.Registry.TryGetRun("s", out RunInfo? replacement).Should().BeTrue();
        replacement!.Status.Should().Be(RunStatus.Running);
        Counts(host.LogsWithEvent(Summary).Should().ContainSingle().Subject).Should().Be((1, 1, 0, 0, 1, false));
        host.LogsWithEvent(NotDrained).Should().BeEmpty();
    }

    [Fact]
    public async Task StopAsync_WaitingStartAdmittedBetweenTheSnapshotAndTheDrainsList_AbortsItsRunToo()
    {
        // The first run ends just after the shutdown's snapshot, as the drain starts listing its runs: its session's
        // waiting start is admitted, and the drain waits for that run, so the shutdown must abort it as well.
        var clock = new DrainListingClock();
        TestHost host = TestHost.Build(register: (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddSingleton<TimeProvider>(clock);
        });
        await using (host)
        {
            await host.Host.StartAsync();
            RunHandle first = host.Registry.Start("a");
            Task<RunHandle> waiting = host.Registry.StartAsync("a", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(1) }).AsTask();
            clock.OnDrainListing = first.Dispose;

            Task stop = host.Host.StopAsync();
            RunHandle admitted = await waiting.WaitAsync(TestHost.HangGuard);

            clock.OnDrainListing.Should().BeNull("the first run ended while the drain listed its runs");
            admitted.AbortToken.IsCancellationRequested.Should().BeTrue("the shutdown aborts every run its drain waits for");
            admitted.Status.Should().Be(RunStatus.Aborting);
            admitted.Dispose();
            await stop.WaitAsync(TestHost.HangGuard);
            Counts(host.LogsWithEvent(Summary).Should().ContainSingle().Subject).Should().Be((1, 1, 0, 0, 0, false));
        }
    }

    [Fact]
    public async Task DisposeHost_AfterStop_EndsWhatTheDrainLeftRunning()
    {
        TestHost host = await TestHost.StartAsync();
        RunHandle run = host.Registry.Start("long", new RunStartOptions { GracePeriod = TimeSpan.FromDays(1) });
        using var shutdown = new CancellationTokenSource();
        await shutdown.CancelAsync();
        await host.Host.StopAsync(shutdown.Token).WaitAsync(TestHost.HangGuard);

        await host.DisposeAsync();

        (await run.Completion.WaitAsync(TestHost.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    private static (int Active, int Drained, int Evicted, int StillRunning, int Abandoned, bool Cancelled) Counts(FakeLogRecord record)
    {
        int Int(string key) => int.Parse(record.GetStructuredStateValue(key)!, System.Globalization.CultureInfo.InvariantCulture);
        return (Int("Active"), Int("Drained"), Int("Evicted"), Int("StillRunning"), Int("Abandoned"), bool.Parse(record.GetStructuredStateValue("Cancelled")!));
    }

    private static async Task HonourTokenAsync(CancellationToken cancellationToken) => await Task.Delay(Timeout.Infinite, cancellationToken);

    private static Task WhenCancelled(CancellationToken token)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => tcs.TrySetResult());
        return tcs.Task;
    }

    /// <summary>
    /// Advances fake time by <paramref name="total"/> in one-second steps until <paramref name="task"/> completes; the
    /// drain's own wait timer may be armed a moment after the test sees the abort, so one single step could miss it.
    /// </summary>
    private static async Task AdvanceUntilCompletedAsync(FakeTimeProvider time, Task task, TimeSpan total)
    {
        TimeSpan step = TimeSpan.FromSeconds(1);
        for (TimeSpan advanced = TimeSpan.Zero; !task.IsCompleted && advanced < total * 2; advanced += step)
        {
            time.Advance(step);
            await Task.Yield();
        }

        await task.WaitAsync(TestHost.HangGuard);
    }

    /// <summary>A fake clock that runs <see cref="OnDrainListing"/> once, on the first clock read made inside <c>ActiveRunRegistry.DrainAsync</c>.</summary>
    private sealed class DrainListingClock() : FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero))
    {
        private Action? _onDrainListing;

        public Action? OnDrainListing
        {
            get => Volatile.Read(ref _onDrainListing);
            set => Volatile.Write(ref _onDrainListing, value);
        }

        public override long GetTimestamp()
        {
            // The drain reads the clock as it cancels the waiting starts and lists the runs; the stack is the only sign.
            if (Volatile.Read(ref _onDrainListing) is not null
                && new System.Diagnostics.StackTrace().ToString().Contains("ActiveRunRegistry.DrainAsync", StringComparison.Ordinal))
            {
                Interlocked.Exchange(ref _onDrainListing, null)?.Invoke();
            }

            return base.GetTimestamp();
        }
    }
}
