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
        foreach (Fault fault in Enum.GetValues<Fault>())
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
        var callbackRan = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            Task? viaRunAsync = StartFaultyRun(f.Registry, fault, path, release, callbackRan);
            using RunHandle bystander = f.Registry.Start("bystander");
            bystander.Attach(new TaskCompletionSource().Task);

            await AdvanceOffTheTestThread(f, Deadline);
            bystander.Status.Should().Be(RunStatus.Aborting, "the bystander is aborted at its deadline whatever the faulty run's provider does");
            bystander.AbortToken.IsCancellationRequested.Should().BeTrue();
            if (fault != Fault.ProviderBlocksItsThread)
            {
                await callbackRan.Task.Guard();
            }

            await AdvanceOffTheTestThread(f, Grace);
            (await bystander.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
            f.Registry.IsActive("bystander").Should().BeFalse();
            f.Ended.Should().Contain(e => e.Args.SessionId == "bystander" && e.Args.Reason == RunEndReason.ForceEvicted);

            // The faulty run has left too (or, re-entering, been replaced): nothing of it holds its session past deadline + grace.
            RunEndedEventArgs faulty = f.Ended.Select(e => e.Args).First(e => e.SessionId == "faulty");
            faulty.Reason.Should().BeOneOf(RunEndReason.ForceEvicted, RunEndReason.Superseded, RunEndReason.TimedOut, RunEndReason.Aborted);
            f.Registry.GetActiveRuns().Where(r => !(r.SessionId == "faulty" && fault == Fault.CallbackStartsOnItsSession))
                .Should().BeEmpty("only the run the callback started may remain");
            f.Ended.Should().NotContain(e => e.StillRegistered);
            if (viaRunAsync is not null)
            {
                await FluentActions.Awaiting(() => viaRunAsync.Guard()).Should().ThrowAsync<Exception>();
            }
        }
        finally
        {
            release.Set();
        }
    }

    /// <summary>Starts the run whose provider misbehaves; returns the RunAsync task on that path.</summary>
    private static Task? StartFaultyRun(ActiveRunRegistry registry, Fault fault, Path path, ManualResetEventSlim release, TaskCompletionSource callbackRan)
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
                callbackRan.TrySetResult();
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
                }
            });

            // Ignores the token: settles only when the test ends.
            return Task.Run(release.Wait);
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

    /// <summary>Advances the clock on another thread and waits for that, bounded: the watchdog must never wait for provider code.</summary>
    private static async Task AdvanceOffTheTestThread(RegistryFixture f, TimeSpan by)
    {
        Task advance = Task.Run(() => f.Time.Advance(by));
        await advance.WaitAsync(HangGuard);
    }
}
