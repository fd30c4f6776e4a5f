using Microsoft.Extensions.Logging;
using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.WatchdogTestHelpers;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// A handle's identity and state: <see cref="RunHandle.IsCurrent"/>, <see cref="RunHandle.Status"/>, the abort token
/// and <see cref="RunHandle.Completion"/>, and how its text names the run.
/// </summary>
public sealed class RunHandleIdentityTests
{
    private const string Session = "s1";

    [Fact]
    public void Start_Handle_CarriesSessionStartDeadlineAndIncreasingRunIds()
    {
        using var f = new RegistryFixture();
        DateTimeOffset t0 = f.Time.GetUtcNow();

        RunHandle a = f.Registry.Start(Session);
        RunHandle other = f.Registry.Start("s2", new RunStartOptions { Timeout = TimeSpan.FromMinutes(2) });
        a.Dispose();
        f.Time.Advance(TimeSpan.FromSeconds(1));
        RunHandle b = f.Registry.Start(Session);

        a.SessionId.Should().Be(Session);
        a.StartedAt.Should().Be(t0);
        a.Deadline.Should().Be(t0 + RegistryFixture.Timeout);
        other.Deadline.Should().Be(t0 + TimeSpan.FromMinutes(2), "a per-run timeout overrides the registry's");
        b.StartedAt.Should().Be(t0 + TimeSpan.FromSeconds(1));
        new[] { a.RunId, other.RunId, b.RunId }.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public void IsCurrent_TrueWhileRegisteredAndStaysFalseWhenSessionIsReused()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);
        a.IsCurrent.Should().BeTrue();

        a.Abort();
        a.IsCurrent.Should().BeTrue("aborting, but still the session's entry");

        a.Dispose();
        a.IsCurrent.Should().BeFalse();

        // Same session id, new run: A must not look current again.
        RunHandle b = f.Registry.Start(Session);
        a.IsCurrent.Should().BeFalse();
        b.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public void Status_ReleasedRun_GoesRunningThenEnded()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        run.Status.Should().Be(RunStatus.Running);

        run.Dispose();

        run.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void Status_TimedOutZombie_GoesRunningAbortingEvicted()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        f.Time.Advance(RegistryFixture.Timeout - TestTime.Tick);
        run.Status.Should().Be(RunStatus.Running);
        f.Time.Advance(TestTime.Tick);
        run.Status.Should().Be(RunStatus.Aborting);
        f.Time.Advance(RegistryFixture.Grace);
        run.Status.Should().Be(RunStatus.Evicted);

        run.Dispose();
        run.Status.Should().Be(RunStatus.Evicted, "a late release does not rewrite how the run left");
    }

    [Fact]
    public void Status_SupersededRun_IsEnded()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);

        f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public void AbortToken_NormalRelease_IsNotCancelled()
    {
        using var f = new RegistryFixture();
        RunHandle released = f.Registry.Start(Session);
        RunHandle completed = f.Registry.Start("s2");
        completed.Attach(Task.CompletedTask);

        released.Dispose();

        released.AbortToken.IsCancellationRequested.Should().BeFalse();
        completed.AbortToken.IsCancellationRequested.Should().BeFalse();
        released.Completion.IsCompleted.Should().BeTrue();
        completed.Completion.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public void AbortToken_Superseded_IsCancelled()
    {
        using var f = new RegistryFixture();
        RunHandle a = f.Registry.Start(Session);

        RunHandle b = f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        a.AbortToken.IsCancellationRequested.Should().BeTrue();
        b.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task AbortToken_RegistryDisposed_IsCancelledAndRunEndsAborted()
    {
        var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);

        f.Dispose();

        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Aborted);
        run.Invoking(r => r.Dispose()).Should().NotThrow("disposing a handle never throws, even after the registry is gone");
    }

    [Fact]
    public async Task Completion_AfterRunEnded_NeverChangesAndRunEndsOnce()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        var provider = new TaskCompletionSource();
        run.Attach(provider.Task);
        run.Dispose();
        Task<RunEndReason> completion = run.Completion;

        // Everything that could end a run again: abort, a second release, the provider settling,
        // the deadline and the grace period passing, and a new run superseding on the session.
        run.Abort();
        run.Dispose();
        provider.SetException(new InvalidOperationException("late"));
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace + TimeSpan.FromMinutes(1));
        f.Registry.Start(Session);
        f.Registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        run.Completion.Should().BeSameAs(completion);
        (await completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
        f.EndedFor(run.RunId).Should().ContainSingle();
        run.Status.Should().Be(RunStatus.Ended);
    }

    [Fact]
    public async Task Completion_Continuations_RunAsynchronously()
    {
        // A continuation that asks to run synchronously must still not run inside Dispose (under the
        // caller's locks). Monitor.IsEntered is true only on the thread that holds the lock, inside it.
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start(Session);
        object callersLock = new();
        bool? ranInsideDispose = null;
        Task continuation = run.Completion.ContinueWith(
            _ => ranInsideDispose = Monitor.IsEntered(callersLock),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        lock (callersLock)
        {
            run.Dispose();
        }

        await continuation.WaitAsync(TestTime.HangGuard);
        ranInsideDispose.Should().BeFalse();
    }

    [Fact]
    public void RunHandle_ToString_NamesRunSessionAndStatus()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start(Session);

        run.ToString().Should().Be($"Run {run.RunId} (session '{Session}', Running)");
    }
}
