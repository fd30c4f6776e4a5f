using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// One session, two runs: run A's grace period and eviction instant never act on run B, the session's next run,
/// whether A was released, superseded or aborted, and however the clock moves.
/// </summary>
public sealed class WatchdogGraceIsolationTests
{
    private const string Session = "s1";

    private static TimeSpan Timeout => RegistryFixture.Timeout;

    // The isolation tests (run A's grace timer never touches run B) use short runs: timeout 60 s, grace 30 s.
    private static TimeSpan ShortTimeout => TimeSpan.FromSeconds(60);

    private static TimeSpan ShortGrace => TimeSpan.FromSeconds(30);

    // Short runs here: timeout 60 s, grace 30 s, so A's deadline is at 60 s and its eviction instant at 90 s
    // after the start. Times are offsets from A's start; step null = one jump (timers fire late), otherwise
    // the clock moves in steps of at most that size.

    [Theory]
    [InlineData("00:00:45", "00:00:45", null)] // A released before its deadline; A's deadline and eviction instants pass under B
    [InlineData("00:00:45", "00:00:59", "00:00:01")]
    [InlineData("00:01:00", "00:01:00", null)] // A released in the tick its grace began, B started at once
    [InlineData("00:01:00", "00:01:00", "00:00:01")]
    [InlineData("00:01:15", "00:01:20", "00:00:00.5")]
    [InlineData("00:01:29.9999999", "00:01:29.9999999", null)] // one tick before A's eviction
    [InlineData("00:01:29.9999999", "00:01:29.9999999", "00:00:05")]
    public async Task GraceOfReleasedRun_NeverTouchesNextRunOnSession(string releaseAt, string startNextAt, string? step)
    {
        TimeSpan release = Parse(releaseAt);
        TimeSpan startNext = Parse(startNextAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);

        f.Time.AdvanceTo(t0 + release, s);
        a.Dispose();
        f.Time.AdvanceTo(t0 + startNext, s);
        RunHandle b = f.Registry.Start(Session);

        // Past A's eviction instant (t0 + 90 s), up to one tick before B's own deadline.
        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.Args.RunId.Should().Be(a.RunId);
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(release < ShortTimeout ? RunEndReason.Completed : RunEndReason.TimedOut);

        // B's own watchdog still works, on B's own instants.
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Aborting);
        f.Time.AdvanceTo(b.Deadline + ShortGrace - TestTime.Tick, s);
        b.IsCurrent.Should().BeTrue();
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Evicted);
        f.EndedFor(b.RunId).Should().ContainSingle().Which.Args.Duration.Should().Be(ShortTimeout + ShortGrace);
        f.EndedFor(a.RunId).Should().ContainSingle();
    }

    [Theory]
    [InlineData("00:00:30", null)] // superseded before A's deadline
    [InlineData("00:01:00", null)] // superseded in the tick A's grace began
    [InlineData("00:01:10", "00:00:01")]
    [InlineData("00:01:29.9999999", null)] // one tick before A's eviction
    [InlineData("00:01:29.9999999", "00:00:02")]
    public async Task GraceOfSupersededRun_NeverTouchesReplacement(string supersedeAt, string? step)
    {
        TimeSpan at = Parse(supersedeAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);
        var providerA = new TaskCompletionSource();
        a.Attach(providerA.Task);

        f.Time.AdvanceTo(t0 + at, s);
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Superseded);
        a.AbortToken.IsCancellationRequested.Should().BeTrue();
        f.Registry.GetAbandonedRuns().Should().ContainSingle().Which.RunId.Should().Be(a.RunId, "A's provider is still pending");

        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();

        // A's provider finally settles: it leaves the ledger and B is still untouched.
        providerA.SetResult();
        f.Registry.AbandonedCount.Should().Be(0);
        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);

        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(ShortGrace);
        b.Status.Should().Be(RunStatus.Evicted);
        f.EndedFor(a.RunId).Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Superseded);
        f.EndedFor(b.RunId).Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.ForceEvicted);
    }

    [Theory]
    [InlineData("00:00:10", "00:00:20", null)]
    [InlineData("00:00:10", "00:00:39.9999999", "00:00:01")] // released one tick before A's eviction (40 s)
    [InlineData("00:00:55", "00:01:24", null)] // A's deadline (60 s) passes during its grace; eviction would be at 85 s
    public async Task GraceOfAbortedRun_NeverTouchesNextRunOnSession(string abortAt, string releaseAt, string? step)
    {
        TimeSpan abort = Parse(abortAt);
        TimeSpan release = Parse(releaseAt);
        TimeSpan? s = step is null ? null : Parse(step);
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);

        f.Time.AdvanceTo(t0 + abort, s);
        a.Abort();
        f.Time.AdvanceTo(t0 + release, s);
        a.Dispose();
        RunHandle b = f.Registry.Start(Session);

        f.Time.AdvanceTo(b.Deadline - TestTime.Tick, s);

        b.IsCurrent.Should().BeTrue();
        b.Status.Should().Be(RunStatus.Running);
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
        (await a.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        f.Ended.Should().ContainSingle();
    }

    [Fact]
    public void GraceOfReleasedRun_NextRunDeadlineAtOldEvictionInstant_NextRunIsOnlyAborted()
    {
        // A times out at 60 s (eviction due at 90 s) and is released at 70 s. B starts at 70 s with a 20 s
        // timeout, so B's deadline is A's old eviction instant. At 90 s B must be aborted (its deadline),
        // not evicted (A's grace).
        using var f = CreateFixture(timeout: ShortTimeout, grace: ShortGrace);
        DateTimeOffset t0 = f.Time.GetUtcNow();
        RunHandle a = f.Registry.Start(Session);
        f.Time.AdvanceTo(t0 + TimeSpan.FromSeconds(70));
        a.Dispose();
        RunHandle b = f.Registry.Start(Session, new RunStartOptions { Timeout = TimeSpan.FromSeconds(20) });
        b.Deadline.Should().Be(t0 + ShortTimeout + ShortGrace);

        f.Time.AdvanceTo(t0 + ShortTimeout + ShortGrace);

        b.Status.Should().Be(RunStatus.Aborting);
        b.IsCurrent.Should().BeTrue();
        f.EndedFor(b.RunId).Should().BeEmpty();

        f.Time.AdvanceTo(b.Deadline + ShortGrace - TestTime.Tick);
        b.IsCurrent.Should().BeTrue();
        f.Time.Advance(TestTime.Tick);
        b.Status.Should().Be(RunStatus.Evicted);
    }

    private static TimeSpan Parse(string value) => TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
}
