using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Provider code on the abort path, row by row, under both ways of starting a run: whatever a run's provider does
/// when its abort token is cancelled (block briefly or for good, throw, re-enter the registry) or however it holds
/// its thread, every other session's run is still aborted at its deadline and evicted at deadline + grace, and the
/// watchdog's caller never waits for that code.
/// </summary>
public sealed class AbortPathFaultMatrixTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    /// <summary>What the faulty run's provider does.</summary>
    public enum Fault
    {
        /// <summary>Its abort callback blocks for 200 ms (a socket close that takes a while).</summary>
        CallbackBlocksBriefly,

        /// <summary>Its abort callback blocks until the test ends (a socket close that never returns).</summary>
        CallbackBlocksForever,

        /// <summary>Its abort callback throws.</summary>
        CallbackThrows,

        /// <summary>Its abort callback starts a run on its own session, superseding itself.</summary>
        CallbackStartsOnItsSession,

        /// <summary>Its abort callback calls <c>TryAbort</c> on its own session.</summary>
        CallbackTryAborts,

        /// <summary>Its abort callback disposes the run's handle.</summary>
        CallbackDisposesTheHandle,

        /// <summary>The provider blocks its thread synchronously, ignoring the token.</summary>
        ProviderBlocksItsThread,

        /// <summary>Its abort callback disposes the registry (a host that shuts down when a run times out).</summary>
        CallbackDisposesTheRegistry,

        /// <summary>Its abort callback calls <c>DrainAsync</c> without a timeout and blocks until the drain reports.</summary>
        CallbackDrainsTheRegistry,
    }

    /// <summary>How the faulty run is started.</summary>
    public enum Path
    {
        /// <summary><c>registry.RunAsync(session, provider)</c>.</summary>
        RunAsync,

        /// <summary><c>registry.Start(session)</c>, the host calls the provider with <c>AbortToken</c>, then <c>run.Attach(task)</c>.</summary>
        StartAttach,
    }

    public static TheoryData<Fault, Path> Rows()
    {
        var data = new TheoryData<Fault, Path>();
        // The disposal row ends every run at once, so it has a theory of its own with what that means for the bystander.
        foreach (Fault fault in Enum.GetValues<Fault>().Where(f => f != Fault.CallbackDisposesTheRegistry))
        {
            foreach (Path path in Enum.GetValues<Path>())
            {
                data.Add(fault, path);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Fault_OnTheAbortPath_OtherSessionsAbortedAndEvictedOnTime(Fault fault, Path path)
    {
        var options = new RunSupervisorOptions { RunTimeout = Deadline, GracePeriod = Grace };
        using var f = new RegistryFixture(options);
        using var release = new ManualResetEventSlim();
        var callback = new CallbackProbe();
        try
        {
            Task? viaRunAsync = StartFaultyRun(f.Registry, fault, path, release, callback);
            using RunHandle bystander = f.Registry.Start("bystander");
            bystander.Attach(new TaskCompletionSource().Task);

            await AdvanceOffTheTestThread(f, Deadline);
            bystander.Status.Should().Be(RunStatus.Aborting, "the bystander is aborted at its deadline whatever the faulty run's provider does");
            bystander.AbortToken.IsCancellationRequested.Should().BeTrue();
            if (fault != Fault.ProviderBlocksItsThread)
            {
                await callback.Ran.Task.Guard();
            }

            Task<DrainResult>? drain = null;
            if (fault == Fault.CallbackDrainsTheRegistry)
            {
                // The drain waits for both runs, which only the watchdog can end now (its caller, the callback, blocks on it).
                drain = await callback.DrainCalled.Task.Guard();
                drain.IsCompleted.Should().BeFalse("the drain waits for the runs active when it was called");
            }

            await AdvanceOffTheTestThread(f, Grace);
            (await bystander.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
            if (fault is not (Fault.CallbackBlocksForever or Fault.ProviderBlocksItsThread))
            {
                // What the callback did (a start, an abort, a drain) is published on its own thread: the ends are read once it returned.
                await callback.Returned.Task.Guard();
            }

            f.Registry.IsActive("bystander").Should().BeFalse();
            f.Ended.Should().Contain(e => e.Args.SessionId == "bystander" && e.Args.Reason == RunEndReason.ForceEvicted);

            // The faulty run has left too (or, re-entering, been replaced): nothing of it holds its session past deadline + grace.
            RunEndedEventArgs faulty = f.Ended.Select(e => e.Args).First(e => e.SessionId == "faulty");
            faulty.Reason.Should().BeOneOf(RunEndReason.ForceEvicted, RunEndReason.Superseded, RunEndReason.TimedOut, RunEndReason.Aborted);
            f.Registry.GetActiveRuns().Where(r => !(r.SessionId == "faulty" && fault == Fault.CallbackStartsOnItsSession))
                .Should().BeEmpty("only the run the callback started may remain");
            f.Ended.Should().NotContain(e => e.StillRegistered);
            f.Ended.Single(e => e.Args.SessionId == "bystander").Args.Duration.Should().Be(Deadline + Grace, "evicted at its eviction instant, not later");
            if (viaRunAsync is not null)
            {
                await FluentActions.Awaiting(() => viaRunAsync.Guard()).Should().ThrowAsync<Exception>();
            }

            if (drain is not null)
            {
                // The watchdog's evictions are what let the blocked callback's drain finish, and it reports them.
                DrainResult result = await drain.Guard();
                result.Evicted.Should().BeEquivalentTo(["faulty", "bystander"]);
            }
        }
        finally
        {
            release.Set();
        }
    }

    public static TheoryData<Path> Paths() => new(Enum.GetValues<Path>());

    /// <summary>
    /// The disposal row: a callback that disposes the registry ends every run there and then, so the bystander is
    /// aborted at its deadline and leaves at that same instant (earlier than its eviction instant, never later), and the
    /// watchdog's caller waits for neither the callback nor the disposal.
    /// </summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public async Task CallbackDisposesTheRegistry_OnTheAbortPath_OtherSessionsAbortedAtTheDeadlineAndEndedNoLaterThanTheirEviction(Path path)
    {
        var options = new RunSupervisorOptions { RunTimeout = Deadline, GracePeriod = Grace };
        using var f = new RegistryFixture(options);
        using var release = new ManualResetEventSlim();
        var callback = new CallbackProbe();
        try
        {
            Task? viaRunAsync = StartFaultyRun(f.Registry, Fault.CallbackDisposesTheRegistry, path, release, callback);
            RunHandle bystander = f.Registry.Start("bystander");
            bystander.Attach(new TaskCompletionSource().Task);

            await AdvanceOffTheTestThread(f, Deadline);
            bystander.AbortToken.IsCancellationRequested.Should().BeTrue("the bystander is aborted at its deadline");
            await callback.Returned.Task.Guard();

            // The clock has not moved past the deadline: the disposal ended the bystander no later than its eviction instant.
            (await bystander.Completion.Guard()).Should().Be(RunEndReason.Aborted);
            f.Registry.IsDisposed.Should().BeTrue();
            f.Registry.FindEntry("bystander").Should().BeNull();
            f.Registry.FindEntry("faulty").Should().BeNull();
            RunEndedEventArgs ended = f.Ended.Select(e => e.Args).Single(e => e.SessionId == "bystander");
            ended.Detail.Should().Be("the registry was disposed");
            ended.Duration.Should().Be(Deadline);
            f.Ended.Select(e => e.Args).Single(e => e.SessionId == "faulty").Reason.Should().Be(RunEndReason.Aborted);
            f.Ended.Should().NotContain(e => e.StillRegistered);

            // A disposed registry's watchdog is stopped: moving on to the eviction instant changes nothing and never blocks.
            await AdvanceOffTheTestThread(f, Grace);
            f.Ended.Should().HaveCount(2);
            if (viaRunAsync is not null)
            {
                await FluentActions.Awaiting(() => viaRunAsync.Guard()).Should().ThrowAsync<OperationCanceledException>();
            }
        }
        finally
        {
            release.Set();
        }
    }

    /// <summary>Starts the run whose provider misbehaves; returns the RunAsync task on that path.</summary>
    private static Task? StartFaultyRun(ActiveRunRegistry registry, Fault fault, Path path, ManualResetEventSlim release, CallbackProbe callback)
    {
        RunHandle? handle = null;
        Task Provider(CancellationToken token)
        {
            if (fault == Fault.ProviderBlocksItsThread)
            {
                release.Wait();
                return Task.CompletedTask;
            }

            token.Register(() =>
            {
                callback.Ran.TrySetResult();
                try
                {
                    Misbehave();
                }
                finally
                {
                    callback.Returned.TrySetResult();
                }
            });

            // Ignores the token: settles only when the test ends.
            return Task.Run(release.Wait);
        }

        void Misbehave()
        {
            switch (fault)
            {
                case Fault.CallbackBlocksBriefly:
                    Thread.Sleep(200);
                    break;
                case Fault.CallbackBlocksForever:
                    release.Wait();
                    break;
                case Fault.CallbackThrows:
                    throw new InvalidOperationException("the provider's cancel path failed");
                case Fault.CallbackStartsOnItsSession:
                    registry.Start("faulty", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
                    break;
                case Fault.CallbackTryAborts:
                    registry.TryAbort("faulty", reason: "from the callback");
                    break;
                case Fault.CallbackDisposesTheHandle:
                    // Under RunAsync the provider has no handle; disposing the registry's view of the run is TryAbort's job.
                    handle?.Dispose();
                    registry.TryAbort("faulty");
                    break;
                case Fault.CallbackDisposesTheRegistry:
                    registry.Dispose();
                    break;
                case Fault.CallbackDrainsTheRegistry:
                    // Blocks this callback until every run active now has ended: only the watchdog can end them.
                    Task<DrainResult> drain = registry.DrainAsync(Timeout.InfiniteTimeSpan);
                    callback.DrainCalled.TrySetResult(drain);
                    drain.Wait(HangGuard);
                    break;
            }
        }

        if (path == Path.RunAsync)
        {
            return registry.RunAsync("faulty", Provider);
        }

        handle = registry.Start("faulty");
        Task task = fault == Fault.ProviderBlocksItsThread ? Task.Run(() => Provider(handle.AbortToken)) : Provider(handle.AbortToken);
        handle.Attach(task);
        return null;
    }

    /// <summary>What the faulty run's abort callback got to: it ran, it returned, and the drain it called (on that row).</summary>
    private sealed class CallbackProbe
    {
        public TaskCompletionSource Ran { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Returned { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<Task<DrainResult>> DrainCalled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Advances the clock on another thread and waits for that, bounded: the watchdog must never wait for provider code.</summary>
    private static async Task AdvanceOffTheTestThread(RegistryFixture f, TimeSpan by)
    {
        Task advance = Task.Run(() => f.Time.Advance(by));
        await advance.WaitAsync(HangGuard);
    }
}
