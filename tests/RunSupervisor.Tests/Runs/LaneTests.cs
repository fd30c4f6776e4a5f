using System.Globalization;
using FluentAssertions;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary>Lanes (<see cref="RunSupervisorOptions.Lanes"/>) and the global cap (<see cref="RunSupervisorOptions.MaxActiveRuns"/>).</summary>
public sealed class LaneTests
{
    private static readonly RunStartOptions Cron = new() { Lane = "cron" };

    private static RegistryFixture WithCronLane(int cap = 2, int maxActiveRuns = 0)
    {
        var options = new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace, MaxActiveRuns = maxActiveRuns, QueueTimeout = TimeSpan.FromHours(1) };
        options.Lanes["cron"] = cap;
        return new RegistryFixture(options);
    }

    [Fact]
    public void Start_LaneAtItsCap_ThrowsRunQueueFullExceptionNamingTheLaneAndTryStartReturnsFalse()
    {
        using var f = WithCronLane();
        f.Registry.Start("a", Cron);
        f.Registry.Start("b", Cron);

        RunQueueFullException error = FluentActions.Invoking(() => f.Registry.Start("c", Cron)).Should().Throw<RunQueueFullException>().Which;
        error.Lane.Should().Be("cron");
        error.Limit.Should().Be(2);
        error.SessionId.Should().Be("c");
        f.Registry.TryStart("c", out _, Cron).Should().BeFalse();
        f.Registry.Start("c").Dispose();
    }

    [Fact]
    public async Task StartAsync_LaneAtItsCap_WaitsFirstInFirstOutAndIsAdmittedWhenALaneRunLeaves()
    {
        using var f = WithCronLane(cap: 1);
        RunHandle running = f.Registry.Start("a", Cron);
        ValueTask<RunHandle> b = f.Registry.StartAsync("b", Cron);
        ValueTask<RunHandle> c = f.Registry.StartAsync("c", Cron);

        b.IsCompleted.Should().BeFalse();
        f.Registry.GetQueuedCount("b").Should().Be(1, "a start waiting for a lane slot counts in its own session's queue");
        f.Registry.IsActive("b").Should().BeFalse();
        running.Dispose();

        b.IsCompletedSuccessfully.Should().BeTrue();
        c.IsCompleted.Should().BeFalse();
        RunHandle admitted = await b;
        f.Registry.TryGetRun("b", out RunInfo? info).Should().BeTrue();
        info!.Lane.Should().Be("cron");
        admitted.Dispose();
        (await c).Dispose();
    }

    [Fact]
    public async Task StartAsync_LaneSlotHeldByAZombie_FreedAtItsEvictionInstant()
    {
        using var f = WithCronLane(cap: 1);
        RunHandle zombie = f.Registry.Start("a", Cron);
        zombie.Attach(new TaskCompletionSource().Task);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync("b", Cron);

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace - TimeSpan.FromTicks(1));
        waiting.IsCompleted.Should().BeFalse();
        f.Time.Advance(TimeSpan.FromTicks(1));

        waiting.IsCompletedSuccessfully.Should().BeTrue("a zombie never holds a lane slot past deadline + grace");
        (await waiting).Dispose();
    }

    [Fact]
    public async Task StartAsync_GlobalCapReached_WaitsInTheDefaultLaneAndOtherLanesToo()
    {
        using var f = WithCronLane(cap: 5, maxActiveRuns: 2);
        RunHandle a = f.Registry.Start("a");
        RunHandle b = f.Registry.Start("b", Cron);
        FluentActions.Invoking(() => f.Registry.Start("c")).Should().Throw<RunQueueFullException>().Which.Limit.Should().Be(2);

        ValueTask<RunHandle> c = f.Registry.StartAsync("c", Cron);
        ValueTask<RunHandle> d = f.Registry.StartAsync("d");

        a.Dispose();
        c.IsCompletedSuccessfully.Should().BeTrue("across lanes, the start that waited first goes first");
        d.IsCompleted.Should().BeFalse();
        b.Dispose();
        d.IsCompletedSuccessfully.Should().BeTrue();
        (await c).Dispose();
        (await d).Dispose();
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Fact]
    public void Start_SupersedeWithinAFullLane_ReplacesTheRunInItsSlot()
    {
        using var f = WithCronLane(cap: 1);
        f.Registry.Start("a", Cron);

        using RunHandle replacement = f.Registry.Start("a", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Supersede });

        replacement.IsCurrent.Should().BeTrue("the replaced run's slot is the new run's to take");
        FluentActions.Invoking(() => f.Registry.Start("b", Cron)).Should().Throw<RunQueueFullException>();
    }

    [Theory]
    [InlineData(true, SessionBusyBehavior.Wait, "preempted by run {0}: a foreground start on a background run")]
    [InlineData(false, SessionBusyBehavior.Supersede, "superseded by run {0}")]
    public async Task StartAsync_WaitingOnlyForItsLaneWithARunItWouldReplace_ReplacesTheRunWhenTheSlotFrees(bool currentBackground, SessionBusyBehavior whenBusy, string detail)
    {
        using var f = WithCronLane(cap: 1);
        RunHandle current = f.Registry.Start("s", new RunStartOptions { Background = currentBackground });
        RunHandle cronHolder = f.Registry.Start("other", Cron);
        ValueTask<RunHandle> replacing = f.Registry.StartAsync("s", new RunStartOptions { Lane = "cron", WhenBusy = whenBusy });
        replacing.IsCompleted.Should().BeFalse("the cron lane is full");

        cronHolder.Dispose();

        replacing.IsCompletedSuccessfully.Should().BeTrue("a start held back only by its lane takes the run's place once it has a slot, not once the run ends");
        using RunHandle admitted = await replacing;
        (await current.Completion).Should().Be(RunEndReason.Superseded);
        admitted.IsCurrent.Should().BeTrue();
        f.Ended.Select(e => e.Args.Detail).Should().Contain(string.Format(CultureInfo.InvariantCulture, detail, admitted.RunId));
        f.LogsWithEvent(currentBackground ? "RunPreempted" : "RunSuperseded").Should().ContainSingle();
        f.Registry.GetQueuedCount("s").Should().Be(0);
    }

    [Fact]
    public async Task StartAsync_ReadyForegroundWaiterWhoseSessionABackgroundStartTook_PreemptsItWhenTheSlotFrees()
    {
        using var f = WithCronLane(cap: 1);
        RunHandle cronHolder = f.Registry.Start("other", Cron);
        ValueTask<RunHandle> user = f.Registry.StartAsync("s", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });

        // A start that does not wait takes the free session meanwhile.
        RunHandle heartbeat = f.Registry.Start("s", new RunStartOptions { Background = true });
        cronHolder.Dispose();

        user.IsCompletedSuccessfully.Should().BeTrue("a background run never holds back a foreground start that has its slot");
        (await user).Dispose();
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
    }

    [Fact]
    public async Task StartAsync_RegistryAtItsCapWhenTheLaneFrees_AForegroundWaiterStillPreemptsItsBackgroundRun()
    {
        using var f = WithCronLane(cap: 1, maxActiveRuns: 2);
        RunHandle heartbeat = f.Registry.Start("s", new RunStartOptions { Background = true });
        RunHandle cronHolder = f.Registry.Start("o", Cron);
        ValueTask<RunHandle> user = f.Registry.StartAsync("s", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });

        // The cron run is replaced by a default-lane run: the lane has room, the registry is still at its cap.
        using RunHandle replacement = f.Registry.Start("o", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
        (await cronHolder.Completion).Should().Be(RunEndReason.Superseded);

        user.IsCompletedSuccessfully.Should().BeTrue("taking the background run's place needs no global slot");
        (await user).Dispose();
        (await heartbeat.Completion).Should().Be(RunEndReason.Superseded);
        f.Registry.ActiveCount.Should().Be(1);
    }

    [Fact]
    public async Task StartAsync_ForegroundWaitingForItsLaneOnAForegroundRun_WaitsForTheSessionOnceTheSlotFrees()
    {
        using var f = WithCronLane(cap: 1);
        RunHandle current = f.Registry.Start("s");
        RunHandle cronHolder = f.Registry.Start("other", Cron);
        ValueTask<RunHandle> next = f.Registry.StartAsync("s", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });

        cronHolder.Dispose();
        next.IsCompleted.Should().BeFalse("a foreground run is not preempted: the start now waits for its session");
        current.IsCurrent.Should().BeTrue();
        current.Dispose();

        next.IsCompletedSuccessfully.Should().BeTrue();
        (await next).Dispose();
    }

    [Fact]
    public async Task StartAsync_ForegroundQueuedBehindABackgroundStart_PreemptsItOnceItIsAdmitted()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start("s");
        ValueTask<RunHandle> heartbeat = f.Registry.StartAsync("s", new RunStartOptions { Background = true, WhenBusy = SessionBusyBehavior.Wait });
        ValueTask<RunHandle> user = f.Registry.StartAsync("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait });

        current.Dispose();

        // First in, first admitted; then the background run yields to the foreground start, as it would to a new one.
        heartbeat.IsCompletedSuccessfully.Should().BeTrue();
        user.IsCompletedSuccessfully.Should().BeTrue();
        RunHandle admittedHeartbeat = await heartbeat;
        using RunHandle admittedUser = await user;
        (await admittedHeartbeat.Completion).Should().Be(RunEndReason.Superseded);
        admittedUser.IsCurrent.Should().BeTrue();
        admittedUser.RunId.Should().BeGreaterThan(admittedHeartbeat.RunId);
    }

    [Fact]
    public void Start_UnknownLane_ThrowsArgumentExceptionNamingIt()
    {
        using var f = WithCronLane();

        FluentActions.Invoking(() => f.Registry.Start("a", new RunStartOptions { Lane = "nightly" }))
            .Should().Throw<ArgumentException>().WithMessage("*'nightly'*cron*");
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Options_LaneCapBelowOne_FailsValidationNamingTheLane(int cap)
    {
        var options = new RunSupervisorOptions();
        options.Lanes["cron"] = cap;

        FluentActions.Invoking(() => new ActiveRunRegistry(options)).Should().Throw<OptionsValidationException>().WithMessage("*Lanes['cron']*at least 1*");
    }

    [Fact]
    public async Task StartAsync_ReadyHeadWhoseSessionWasTakenMeanwhile_DoesNotHoldBackAPreemptingStartBehindItAtTheGlobalCap()
    {
        // w waited for a cron slot on a free session, which a start that did not wait then took: w now waits for its
        // session. x, behind it in the lane, would preempt its session's background run, which needs no global slot.
        using var f = WithCronLane(cap: 1, maxActiveRuns: 3);
        RunHandle cronHolder = f.Registry.Start("o", Cron);
        ValueTask<RunHandle> w = f.Registry.StartAsync("s", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });
        using RunHandle taken = f.Registry.Start("s");
        RunHandle background = f.Registry.Start("t", new RunStartOptions { Background = true });
        ValueTask<RunHandle> x = f.Registry.StartAsync("t", new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Wait });
        x.IsCompleted.Should().BeFalse("the cron lane is full");

        // The cron run is replaced by a default-lane run: the cron lane has room, the registry stays at its cap.
        using RunHandle replacement = f.Registry.Start("o", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        f.Registry.ActiveCount.Should().Be(3);
        x.IsCompletedSuccessfully.Should().BeTrue("x needs only the cron slot, and w waits for its session, not for a slot");
        (await x).Dispose();
        (await background.Completion).Should().Be(RunEndReason.Superseded);
        w.IsCompleted.Should().BeFalse();
        taken.Dispose();
        (await w).Dispose();
        cronHolder.IsCurrent.Should().BeFalse();
    }

    [Fact]
    public async Task StartAsync_TwoWaitingSupersedesAdmittedInOneStep_EndsArePublishedInTheOrderTheRunsWereReplaced()
    {
        using var f = WithCronLane(cap: 1);
        RunHandle original = f.Registry.Start("s");
        RunHandle cronHolder = f.Registry.Start("other", Cron);
        var supersede = new RunStartOptions { Lane = "cron", WhenBusy = SessionBusyBehavior.Supersede };
        ValueTask<RunHandle> s1 = f.Registry.StartAsync("s", supersede);
        ValueTask<RunHandle> s2 = f.Registry.StartAsync("s", supersede);

        cronHolder.Dispose();

        RunHandle first = await s1;
        using RunHandle second = await s2;
        second.IsCurrent.Should().BeTrue();
        f.Ended.Select(e => e.Args.RunId).Should().Equal(
            [cronHolder.RunId, original.RunId, first.RunId],
            "the first admitted run replaced the original, then the second replaced the first: RunEnded follows that order");
        f.Ended.Select(e => e.Args.Detail).Skip(1).Should().Equal($"superseded by run {first.RunId}", $"superseded by run {second.RunId}");
    }
}
