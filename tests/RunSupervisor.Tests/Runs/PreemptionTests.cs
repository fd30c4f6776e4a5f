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
    public async Task StartAsync_ForegroundWaitingWhenABackgroundSupersedeReplacesTheRun_PreemptsTheBackgroundRun()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> user = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });
        user.IsCompleted.Should().BeFalse("a foreground run is not preempted");

        RunHandle heartbeat = f.Registry.Start(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Supersede });

        (await current.Completion).Should().Be(RunEndReason.Superseded);
        user.IsCompletedSuccessfully.Should().BeTrue("the waiting foreground start now faces a background run, which yields to it");
        using RunHandle admitted = await user;
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
        admitted.IsCurrent.Should().BeTrue();
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

        // A background run takes the session's place; the oldest foreground start would preempt it but has no cron slot.
        RunHandle heartbeat = f.Registry.Start(Session, new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Supersede });
        (await current.Completion).Should().Be(RunEndReason.Superseded);
        next.IsCompleted.Should().BeFalse("it waits behind the older foreground start");

        await giveUp.CancelAsync();

        await FluentActions.Awaiting(async () => await oldest).Should().ThrowAsync<OperationCanceledException>();
        next.IsCompletedSuccessfully.Should().BeTrue("now the session's oldest foreground start, it preempts the background run");
        (await next).Dispose();
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public void Start_BackgroundOnAForegroundRun_FollowsWhenBusy()
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
