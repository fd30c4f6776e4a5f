using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// The checks a start makes before it enters: a disposed registry wins over invalid options and over a disposal that
/// lands while the start is being built, the per-run limits are inclusive, a pre-cancelled start still validates its
/// session id, and the synchronous starts treat <see cref="SessionBusyBehavior.Wait"/> exactly as Reject.
/// </summary>
public sealed class StartGuardTests
{
    private const string Session = "s1";

    [Fact]
    public void Start_DisposedRegistryAndInvalidOptions_ThrowsObjectDisposed()
    {
        using var f = new RegistryFixture();
        f.Registry.Dispose();

        // The options are checked only for a registry that could run the start.
        f.Registry.Invoking(r => r.Start(Session, new RunStartOptions { Timeout = TimeSpan.FromSeconds(-1) }))
            .Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void Start_RegistryDisposedWhileTheStartReadsTheClock_ThrowsObjectDisposedAndNothingRuns()
    {
        var time = new HookedTimeProvider();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions(), time);
        int ended = 0;
        registry.RunEnded += (_, _) => ended++;

        // The start passes its first disposed check, then the registry is disposed as the start reads the clock.
        time.OnTimestamp = registry.Dispose;

        registry.Invoking(r => r.Start(Session)).Should().Throw<ObjectDisposedException>();
        ended.Should().Be(0, "no run entered the disposed registry, so none ends");
    }

    [Fact]
    public void Start_WaitForASessionWithWaitingStartsButNoRun_EntersAsRejectWould()
    {
        var options = new RunSupervisorOptions();
        options.Lanes["cron"] = 1;
        using var f = new RegistryFixture(options);
        using RunHandle other = f.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, Lane = "cron" });
        waiting.IsCompleted.Should().BeFalse("the cron lane is full");

        // A Reject start is not held back by the session's waiting starts, and to Start, Wait is Reject.
        using RunHandle run = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });

        run.SessionId.Should().Be(Session);
        f.Registry.GetQueuedCount(Session).Should().Be(1);
    }

    [Fact]
    public void TryStart_WaitForASessionWithWaitingStartsButNoRun_EntersAsRejectWould()
    {
        var options = new RunSupervisorOptions();
        options.Lanes["cron"] = 1;
        using var f = new RegistryFixture(options);
        using RunHandle other = f.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        _ = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, Lane = "cron" });

        f.Registry.TryStart(Session, out RunHandle? run, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait }).Should().BeTrue();

        run!.Dispose();
    }

    [Fact]
    public async Task StartAsync_QueueTimeoutAtTheLimit_IsAccepted()
    {
        using var f = new RegistryFixture();

        using RunHandle run = await f.Registry.StartAsync(Session, new RunStartOptions { QueueTimeout = RunSupervisorOptions.RunTimeoutLimit });

        run.SessionId.Should().Be(Session);
    }

    [Fact]
    public void Start_IdleTimeoutAtTheLimit_IsAccepted()
    {
        using var f = new RegistryFixture();

        using RunHandle run = f.Registry.Start(Session, new RunStartOptions { IdleTimeout = RunSupervisorOptions.RunTimeoutLimit });

        run.SessionId.Should().Be(Session);
    }

    [Fact]
    public void StartAsync_AlreadyCancelledWithAnInvalidSessionId_ThrowsTheArgumentErrorAtOnce()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        // The id is the caller's bug whatever the token says: it is not hidden behind a cancelled task.
        f.Registry.Invoking(r => r.StartAsync(null!, cancellationToken: cts.Token)).Should().Throw<ArgumentNullException>().WithParameterName("sessionId");
        f.Registry.Invoking(r => r.StartAsync(" ", cancellationToken: cts.Token)).Should().Throw<ArgumentException>().WithParameterName("sessionId");
    }

    /// <summary>A fake clock that runs <see cref="OnTimestamp"/> once, on the next timestamp read.</summary>
    private sealed class HookedTimeProvider : FakeTimeProvider
    {
        public Action? OnTimestamp { get; set; }

        public override long GetTimestamp()
        {
            Action? hook = OnTimestamp;
            OnTimestamp = null;
            hook?.Invoke();
            return base.GetTimestamp();
        }
    }
}
