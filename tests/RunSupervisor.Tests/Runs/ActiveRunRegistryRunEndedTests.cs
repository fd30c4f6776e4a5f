using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// <see cref="ActiveRunRegistry.RunEnded"/>: raised once per run after the run has left the registry, in order, and
/// isolated from subscribers that throw.
/// </summary>
public sealed class ActiveRunRegistryRunEndedTests
{
    [ThreadStatic]
    private static bool _insideDispose;

    [Fact]
    public async Task RunEnded_SubscriberThrows_IsLoggedOtherSubscribersRunAndRegistryStaysConsistent()
    {
        using var f = new RegistryFixture(); // its own recorder is the first subscriber
        var failure = new InvalidOperationException("subscriber bug");
        f.Registry.RunEnded += (_, _) => throw failure;
        var seenAfterThrower = new List<long>();
        f.Registry.RunEnded += (_, e) => seenAfterThrower.Add(e.RunId);
        RunHandle run = f.Registry.Start("s1");

        run.Invoking(r => r.Dispose()).Should().NotThrow();

        seenAfterThrower.Should().Equal(run.RunId);
        f.Ended.Should().ContainSingle();
        FakeLogRecord log = f.LogsWithEvent("CallbackFailed").Should().ContainSingle().Subject;
        log.Level.Should().Be(LogLevel.Error);
        log.Exception.Should().BeSameAs(failure);
        log.Message.Should().Contain("'s1'").And.Contain("RunEnded");

        f.Registry.IsActive("s1").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        run.Status.Should().Be(RunStatus.Ended);
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);

        RunHandle next = f.Registry.Start("s1");
        next.IsCurrent.Should().BeTrue();
        next.Dispose();
        seenAfterThrower.Should().Equal(run.RunId, next.RunId);
        f.LogsWithEvent("CallbackFailed").Should().HaveCount(2);
    }

    [Fact]
    public async Task RunEnded_SubscriberThrowsDuringWatchdogEviction_WatchdogKeepsWorking()
    {
        // The throw happens on the timer callback's thread; a broken watchdog would leave the second run alone.
        using var f = new RegistryFixture();
        f.Registry.RunEnded += (_, _) => throw new InvalidOperationException("subscriber bug");
        RunHandle first = f.Registry.Start("s1");
        first.Attach(new TaskCompletionSource().Task);

        f.Invoking(x => x.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace)).Should().NotThrow();

        (await first.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        RunHandle second = f.Registry.Start("s1");
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        (await second.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
        f.Registry.IsActive("s1").Should().BeFalse();
        f.LogsWithEvent("CallbackFailed").Should().HaveCount(2);
        f.Ended.Should().HaveCount(2).And.OnlyContain(e => !e.StillRegistered);
    }

    [Fact]
    public async Task RunEnded_OnRelease_RaisedSynchronouslyAfterEntryIsGoneAndBeforeCompletion()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        bool? activeInHandler = null;
        int? countInHandler = null;
        bool? completionDoneInHandler = null;
        f.Registry.RunEnded += (_, _) =>
        {
            activeInHandler = f.Registry.IsActive("s1");
            countInHandler = f.Registry.ActiveCount;
            completionDoneInHandler = run.Completion.IsCompleted;
        };

        run.Dispose();

        // Synchronous: the handler has run by the time Dispose returns.
        activeInHandler.Should().BeFalse();
        countInHandler.Should().Be(0);
        completionDoneInHandler.Should().BeFalse("RunEnded is raised before Completion completes");
        f.Ended.Should().ContainSingle().Which.StillRegistered.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task RunEnded_OnEviction_RaisedAfterEntryIsGone()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        bool? activeInHandler = null;
        f.Registry.RunEnded += (_, _) => activeInHandler = f.Registry.IsActive("s1");

        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);

        activeInHandler.Should().BeFalse();
        f.Ended.Should().ContainSingle().Which.StillRegistered.Should().BeFalse();
        (await run.Completion.WaitAsync(TestTime.HangGuard)).Should().Be(RunEndReason.ForceEvicted);
    }

    [Fact]
    public async Task Completion_ContinuationRequestingSynchronousExecution_StillRunsOutsideDispose()
    {
        // Completion's continuations run asynchronously: host code awaiting it cannot run inside the registry's
        // release path (and so cannot re-enter it or block it).
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        var ranInsideDispose = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = run.Completion.ContinueWith(
            _ => ranInsideDispose.TrySetResult(_insideDispose),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        _insideDispose = true;
        try
        {
            run.Dispose();
        }
        finally
        {
            _insideDispose = false;
        }

        (await ranInsideDispose.Task.WaitAsync(TestTime.HangGuard)).Should().BeFalse();
    }

}
