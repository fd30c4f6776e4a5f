using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Provider code registered on an abort token can block, throw or re-enter the registry: the registry's own paths
/// (deadline, eviction, supersede, disposal, drain) never run it on their thread and never wait for it.
/// </summary>
public sealed class AbortCallbackIsolationTests
{
    [Fact]
    public async Task Deadline_CallbackThatBlocks_AnotherSessionIsStillAbortedAndEvictedOnTime()
    {
        using var f = new RegistryFixture();
        using var release = new ManualResetEventSlim();
        using var entered = new ManualResetEventSlim();
        RunHandle blocking = f.Registry.Start("blocking");
        blocking.AbortToken.Register(() =>
        {
            entered.Set();
            release.Wait(TestTime.HangGuard);
        });
        RunHandle other = f.Registry.Start("other", new RunStartOptions { Timeout = RegistryFixture.Timeout + TimeSpan.FromSeconds(1) });
        other.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout);
        entered.Wait(TestTime.HangGuard).Should().BeTrue("the callback runs, on the thread pool");
        f.Time.Advance(TimeSpan.FromSeconds(1));
        other.Status.Should().Be(RunStatus.Aborting, "the other run is aborted at its own deadline while the first callback blocks");
        f.Time.Advance(RegistryFixture.Grace);

        other.Status.Should().Be(RunStatus.Evicted);
        blocking.Status.Should().Be(RunStatus.Evicted);
        release.Set();
        (await other.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
    }

    [Fact]
    public void Dispose_RegistryWithACallbackThatBlocks_ReturnsWithoutRunningIt()
    {
        var f = new RegistryFixture();
        using var release = new ManualResetEventSlim();
        RunHandle run = f.Registry.Start("s");
        int ranOn = 0;
        run.AbortToken.Register(() =>
        {
            ranOn = Environment.CurrentManagedThreadId;
            release.Wait(TestTime.HangGuard);
        });

        f.Dispose();

        run.Status.Should().Be(RunStatus.Ended);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        Volatile.Read(ref ranOn).Should().NotBe(Environment.CurrentManagedThreadId);
        release.Set();
    }

    [Fact]
    public void Supersede_OldRunsCallbackBlocks_TheNewRunsCallerDoesNotWait()
    {
        using var f = new RegistryFixture();
        using var release = new ManualResetEventSlim();
        RunHandle old = f.Registry.Start("s");
        int ranOn = 0;
        old.AbortToken.Register(() =>
        {
            ranOn = Environment.CurrentManagedThreadId;
            release.Wait(TestTime.HangGuard);
        });

        using RunHandle replacement = f.Registry.Start("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.Status.Should().Be(RunStatus.Ended);
        replacement.IsCurrent.Should().BeTrue();
        Volatile.Read(ref ranOn).Should().NotBe(Environment.CurrentManagedThreadId);
        release.Set();
    }

    [Fact]
    public async Task Drain_AbortRemainingWithACallbackThatBlocks_ReportsWithoutWaitingForIt()
    {
        using var f = new RegistryFixture();
        using var release = new ManualResetEventSlim();
        RunHandle run = f.Registry.Start("s");
        run.AbortToken.Register(() => release.Wait(TestTime.HangGuard));

        Task<DrainResult> drain = f.Registry.DrainAsync(TimeSpan.Zero, new DrainOptions { AbortRemaining = true });
        DrainResult result = await drain.WaitAsync(TimeSpan.FromSeconds(5));

        result.Aborted.Should().Equal("s");
        release.Set();
    }

    [Fact]
    public async Task Abort_ExplicitCallerAbort_RunsTheCallbackOnTheCallersThreadBeforeReturning()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s");
        int ranOn = 0;
        run.AbortToken.Register(() => ranOn = Environment.CurrentManagedThreadId);

        run.Abort("stop").Should().BeTrue();

        ranOn.Should().Be(Environment.CurrentManagedThreadId, "an explicit abort keeps CancellationTokenSource.Cancel's convention");
        run.Dispose();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Abort_ExplicitAbortWhoseCallbackBlocks_RunIsStillEvictedAtAbortPlusGrace(bool viaRegistry)
    {
        // The callback runs on the aborting thread, which it then holds: the eviction must not wait for it.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        run.AbortToken.Register(() =>
        {
            entered.Set();
            release.Wait(TestTime.HangGuard);
        });
        Task<bool> abort = Task.Run(() => viaRegistry ? f.Registry.TryAbort("s") : run.Abort("hung provider"));
        entered.Wait(TestTime.HangGuard).Should().BeTrue();
        try
        {
            f.Time.Advance(RegistryFixture.Grace);

            run.Status.Should().Be(RunStatus.Evicted, "the eviction instant came while the abort's callback still blocked its thread");
            f.Registry.IsActive("s").Should().BeFalse();
            f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
        }
        finally
        {
            release.Set();
            (await abort.Guard()).Should().BeTrue();
        }
    }

    [Fact]
    public void Abort_ExplicitWithZeroGrace_RunsTheCallbackOnTheCallersThreadThenEvicts()
    {
        // No grace: the abort evicts at once, but after the callbacks, which run on the caller's thread as ever.
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = TimeSpan.Zero });
        RunHandle run = f.Registry.Start("s");
        int ranOn = 0;
        RunStatus statusInCallback = RunStatus.Running;
        run.AbortToken.Register(() =>
        {
            ranOn = Environment.CurrentManagedThreadId;
            statusInCallback = run.Status;
        });

        run.Abort("zero grace").Should().BeTrue();

        ranOn.Should().Be(Environment.CurrentManagedThreadId);
        statusInCallback.Should().Be(RunStatus.Aborting, "the eviction follows the callbacks");
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public async Task Abort_ExplicitWithZeroGraceAndAProviderThatSettlesInItsCallback_EndsAborted()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = TimeSpan.Zero });
        RunHandle run = f.Registry.Start("s");
        var provider = new TaskCompletionSource();
        run.AbortToken.Register(() => provider.TrySetCanceled(run.AbortToken));
        run.Attach(provider.Task);

        run.Abort("stop").Should().BeTrue();

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted, "the provider honoured the abort within the call");
    }

    [Fact]
    public async Task Deadline_CallbackThrows_LoggedWithTheRunsIdsAndTheWatchdogGoesOn()
    {
        using var f = new RegistryFixture();
        RunHandle throwing = f.Registry.Start("throwing");
        throwing.AbortToken.Register(() => throw new InvalidOperationException("cancel path broke"));
        RunHandle later = f.Registry.Start("later", new RunStartOptions { Timeout = RegistryFixture.Timeout + TimeSpan.FromSeconds(1) });

        f.Time.Advance(RegistryFixture.Timeout);
        await WaitForLogAsync(f, "AbortCallbackFailed");
        f.Time.Advance(TimeSpan.FromSeconds(1));

        Microsoft.Extensions.Logging.Testing.FakeLogRecord log = f.LogsWithEvent("AbortCallbackFailed").Should().ContainSingle().Subject;
        log.GetStructuredStateValue("SessionId").Should().Be("throwing");
        log.GetStructuredStateValue("RunId").Should().Be(throwing.RunId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        log.Exception.Should().BeOfType<InvalidOperationException>().Which.Message.Should().Be("cancel path broke");
        later.Status.Should().Be(RunStatus.Aborting, "the watchdog is unaffected");
    }

    [Theory]
    [InlineData("start on the same session")]
    [InlineData("try-abort")]
    [InlineData("dispose the handle")]
    [InlineData("dispose the registry")]
    [InlineData("drain")]
    public async Task Deadline_CallbackReentersTheRegistry_NeitherDeadlocksNorCorruptsState(string reentry)
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s");
        var done = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        run.AbortToken.Register(() =>
        {
            try
            {
                switch (reentry)
                {
                    case "start on the same session":
                        f.Registry.TryStart("s", out _).Should().BeFalse("the aborting run still owns the session");
                        f.Registry.Start("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).Dispose();
                        break;
                    case "try-abort":
                        f.Registry.TryAbort("s").Should().BeFalse("the run is already aborting");
                        break;
                    case "dispose the handle":
                        run.Dispose();
                        break;
                    case "dispose the registry":
                        f.Registry.Dispose();
                        break;
                    case "drain":
                        f.Registry.DrainAsync(TimeSpan.Zero).Wait(TestTime.HangGuard);
                        break;
                }

                done.SetResult(null);
            }
#pragma warning disable CA1031 // Handed to the test thread and asserted there.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                done.SetResult(ex);
            }
        });

        f.Time.Advance(RegistryFixture.Timeout);

        (await done.Task.WaitAsync(TestTime.HangGuard)).Should().BeNull();
        if (reentry != "dispose the registry")
        {
            // Whatever the callback did, the run's owner still settles it within the grace period.
            run.Dispose();
            f.Registry.AbandonedCount.Should().Be(0);
            f.Registry.ActiveCount.Should().Be(0);
        }

        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(reentry switch
        {
            "start on the same session" => RunEndReason.Superseded,
            "dispose the registry" => RunEndReason.Aborted,
            _ => RunEndReason.TimedOut,
        });
    }

    private static async Task WaitForLogAsync(RegistryFixture f, string eventName)
    {
        using var timeout = new CancellationTokenSource(TestTime.HangGuard);
        while (!f.LogsWithEvent(eventName).Any())
        {
            await Task.Delay(1, timeout.Token);
        }
    }
}
