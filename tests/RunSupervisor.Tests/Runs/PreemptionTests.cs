using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary>Background runs (<see cref="RunStartOptions.Background"/>) yield to a foreground start on their session.</summary>
public sealed class PreemptionTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions Background = new() { Background = true };

    [Theory]
    [InlineData(SessionBusyBehavior.Reject)]
    [InlineData(SessionBusyBehavior.Wait)]
    public async Task Start_ForegroundOnABackgroundRun_SupersedesItAtOnceWhateverWhenBusySays(SessionBusyBehavior whenBusy)
    {
        using var f = new RegistryFixture();
        RunHandle heartbeat = f.Registry.Start(Session, Background);

        RunHandle user = await f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = whenBusy });

        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
        heartbeat.AbortToken.IsCancellationRequested.Should().BeTrue();
        user.IsCurrent.Should().BeTrue();
        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Be($"preempted by run {user.RunId}: a foreground start on a background run");
        f.LogsWithEvent("RunPreempted").Should().ContainSingle();
        user.Dispose();
    }

    [Fact]
    public async Task StartAsync_OldestForegroundWaiterOnABackgroundRunGivesUp_TheNextOnePreemptsTheRun()
    {
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace };
        options.Lanes["cron"] = 1;
        using var f = new RegistryFixture(options);
        using RunHandle cronHolder = f.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        RunHandle current = f.Registry.Start(Session);
        using var giveUp = new CancellationTokenSource();
        ValueTask<RunHandle> oldest = f.Registry.StartAsync(Session, new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait }, giveUp.Token);
        ValueTask<RunHandle> next = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });
        current.Dispose();

        // The session is free, its oldest start has no cron slot, and a background start that does not wait takes the
        // session: the oldest foreground start would preempt that run but still has no slot, and the next waits behind it.
        RunHandle heartbeat = f.Registry.Start(Session, Background);
        heartbeat.IsCurrent.Should().BeTrue();
        next.IsCompleted.Should().BeFalse("it waits behind the older foreground start");

        await giveUp.CancelAsync();

        await FluentActions.Awaiting(async () => await oldest).Should().ThrowAsync<OperationCanceledException>();
        next.IsCompletedSuccessfully.Should().BeTrue("now the session's oldest foreground start, it preempts the background run");
        (await next).Dispose();
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
    }

    [Theory]
    [InlineData(SessionBusyBehavior.Supersede)]
    [InlineData(SessionBusyBehavior.Reject)]
    public async Task StartAsync_BackgroundOnAForegroundRun_RefusedEvenWhenItAsksToSupersede(SessionBusyBehavior whenBusy)
    {
        // Background work yields to a user's turn and never ends it: a heartbeat configured with a host's Supersede
        // (a new user message replaces the old one) must not kill the user's answer.
        using var f = new RegistryFixture();
        using RunHandle user = f.Registry.Start(Session);

        FluentActions.Invoking(() => f.Registry.Start(Session, new RunStartOptions { Background = true, WhenBusy = whenBusy }))
            .Should().Throw<SessionBusyException>().Which.RunId.Should().Be(user.RunId);
        await FluentActions.Awaiting(async () => await f.Registry.StartAsync(Session, new RunStartOptions { Background = true, WhenBusy = whenBusy }))
            .Should().ThrowAsync<SessionBusyException>();
        f.Registry.TryStart(Session, out _, new RunStartOptions { Background = true, WhenBusy = whenBusy }).Should().BeFalse();

        user.IsCurrent.Should().BeTrue();
        user.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().BeEmpty();
    }

    [Fact]
    public async Task StartAsync_BackgroundSupersedeOnABackgroundRun_ReplacesIt()
    {
        using var f = new RegistryFixture();
        RunHandle older = f.Registry.Start(Session, Background);

        using RunHandle newer = await f.Registry.StartAsync(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Supersede });

        (await older.Completion).Should().Be(RunEndReason.Superseded);
        f.Ended.Should().ContainSingle().Which.Args.Detail.Should().Be($"superseded by run {newer.RunId}");
        newer.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_BackgroundSupersedeWaitingForItsLaneSlotWhileAForegroundRunHoldsTheSession_WaitsForTheSessionInstead()
    {
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace };
        options.Lanes["cron"] = 1;
        using var f = new RegistryFixture(options);
        RunHandle cronHolder = f.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        ValueTask<RunHandle> heartbeat = f.Registry.StartAsync(Session, new RunStartOptions { Background = true, Lane = "cron", WhenBusy = SessionBusyBehavior.Supersede });
        heartbeat.IsCompleted.Should().BeFalse("its lane is full");

        // A start that does not wait takes the free session meanwhile.
        RunHandle user = f.Registry.Start(Session);
        cronHolder.Dispose();

        heartbeat.IsCompleted.Should().BeFalse("with its slot it finds a user's run, which it may not replace");
        user.IsCurrent.Should().BeTrue();
        user.Dispose();
        using RunHandle admitted = await heartbeat;
        admitted.IsCurrent.Should().BeTrue("the session's oldest waiting start takes it once the user's run leaves");
        (await user.Completion).Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("cron")]
    public async Task StartAsync_LaterForegroundWaitOnABackgroundRunWhileAnEarlierOneWaitsForItsLane_QueuesBehindIt(string laterLane)
    {
        // The earlier start waits only for a cron slot, then preempts; the later one has a slot at once (or would be
        // ready to preempt through its own lane) but waits behind it all the same.
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace };
        options.Lanes["cron"] = 1;
        using var f = new RegistryFixture(options);
        RunHandle cronHolder = f.Registry.Start("other", new RunStartOptions { Lane = "cron" });
        RunHandle background = f.Registry.Start(Session, Background);
        ValueTask<RunHandle> earlier = f.Registry.StartAsync(Session, new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });

        ValueTask<RunHandle> later = f.Registry.StartAsync(Session, new RunStartOptions { Lane = laterLane == "default" ? null : laterLane, WhenBusy = SessionBusyBehavior.Wait });

        later.IsCompleted.Should().BeFalse("a start that waits never overtakes its session's waiting starts");
        background.IsCurrent.Should().BeTrue();
        f.Registry.GetQueuedCount(Session).Should().Be(2);
        cronHolder.Dispose();
        RunHandle first = await earlier;
        (await background.Completion).Should().Be(RunEndReason.Superseded, "the earlier start preempted it once it had its slot");
        later.IsCompleted.Should().BeFalse("the later start waits for the earlier one's run, a foreground one");
        first.Dispose();
        using RunHandle second = await later;
        second.RunId.Should().BeGreaterThan(first.RunId);
    }

    [Fact]
    public void Start_BackgroundOnAForegroundRun_Refused()
    {
        using var f = new RegistryFixture();
        using RunHandle user = f.Registry.Start(Session);

        FluentActions.Invoking(() => f.Registry.Start(Session, Background)).Should().Throw<SessionBusyException>();
        user.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public void Start_BackgroundOnABackgroundRun_FollowsWhenBusy()
    {
        using var f = new RegistryFixture();
        using RunHandle first = f.Registry.Start(Session, Background);

        FluentActions.Invoking(() => f.Registry.Start(Session, Background)).Should().Throw<SessionBusyException>();
    }

    [Fact]
    public void Start_ForegroundOnAnotherSession_NeverPreemptsAcrossSessions()
    {
        using var f = new RegistryFixture();
        using RunHandle heartbeat = f.Registry.Start("a", Background);

        using RunHandle user = f.Registry.Start("b");

        heartbeat.IsCurrent.Should().BeTrue();
        heartbeat.Status.Should().Be(RunStatus.Running);
    }

    [Fact]
    public void GetActiveRuns_BackgroundRun_SaysSo()
    {
        using var f = new RegistryFixture();
        using RunHandle heartbeat = f.Registry.Start("a", Background);

        f.Registry.GetActiveRuns().Should().ContainSingle().Which.Background.Should().BeTrue();
    }
}
