using System.Diagnostics;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// The watchdog's one-shot timer on a thread of its own: it fires no sooner than armed, on a named background thread,
/// can be disarmed and re-armed, and once disposed refuses to arm and lets its thread end.
/// </summary>
/// <remarks>
/// The timer runs on the system tick (<see cref="Environment.TickCount64"/>), which no fake clock drives, so these tests
/// wait in real time: lower bounds are exact on that clock (the thread re-checks it before firing), upper bounds are the
/// generous hang guard.
/// </remarks>
public sealed class DedicatedTimerThreadTests
{
    private const string ThreadName = "timer under test";

    [Fact]
    public async Task RealTime_Change_DueTime_FiresNoSoonerOnANamedBackgroundThread()
    {
        var fired = new TaskCompletionSource<(long ElapsedMilliseconds, Thread Thread)>(TaskCreationOptions.RunContinuationsAsynchronously);
        long armedAt = 0;
        using var timer = new DedicatedTimerThread(
            _ => fired.TrySetResult((Environment.TickCount64 - Volatile.Read(ref armedAt), Thread.CurrentThread)),
            null,
            ThreadName);
        TimeSpan due = TimeSpan.FromMilliseconds(100);

        Volatile.Write(ref armedAt, Environment.TickCount64);
        timer.Change(due, Timeout.InfiniteTimeSpan).Should().BeTrue();

        (long elapsed, Thread thread) = await fired.Task.WaitAsync(TestTime.HangGuard);
        elapsed.Should().BeGreaterThanOrEqualTo(100, "an early wake-up only waits again, so the tick the registry reads has reached the instant");
        thread.Name.Should().Be(ThreadName);
        thread.IsBackground.Should().BeTrue("the timer never keeps the process alive");
        thread.IsThreadPoolThread.Should().BeFalse();
    }

    [Fact]
    public async Task RealTime_Change_CallbackState_IsPassedToTheCallback()
    {
        var fired = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        object state = new();
        using var timer = new DedicatedTimerThread(s => fired.TrySetResult(s), state, ThreadName);

        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);

        (await fired.Task.WaitAsync(TestTime.HangGuard)).Should().BeSameAs(state);
    }

    [Fact]
    public async Task RealTime_Change_InfiniteDueTime_DisarmsIt()
    {
        int calls = 0;
        using var timer = new DedicatedTimerThread(_ => Interlocked.Increment(ref calls), null, ThreadName);
        timer.Change(TimeSpan.FromSeconds(10), Timeout.InfiniteTimeSpan);

        timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan).Should().BeTrue();

        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Volatile.Read(ref calls).Should().Be(0);
    }

    [Fact]
    public async Task RealTime_Change_AfterItFiredAndWentIdle_FiresAgain()
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int calls = 0;
        using var timer = new DedicatedTimerThread(
            _ => (Interlocked.Increment(ref calls) == 1 ? first : second).TrySetResult(),
            null,
            ThreadName);
        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        await first.Task.WaitAsync(TestTime.HangGuard);

        // Long enough for the thread to go back to sleeping with nothing armed, so the next Change must wake it.
        await Task.Delay(TimeSpan.FromMilliseconds(100));
        timer.Change(TimeSpan.FromMilliseconds(10), Timeout.InfiniteTimeSpan).Should().BeTrue();

        await second.Task.WaitAsync(TestTime.HangGuard);
        Volatile.Read(ref calls).Should().Be(2, "each Change arms one firing");
    }

    [Fact]
    public void Change_AfterDispose_ReturnsFalse()
    {
        var timer = new DedicatedTimerThread(static _ => { }, null, ThreadName);

        timer.Dispose();

        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan).Should().BeFalse();
    }

    [Fact]
    public async Task Change_AfterDisposeAsync_ReturnsFalse()
    {
        var timer = new DedicatedTimerThread(static _ => { }, null, ThreadName);

        await timer.DisposeAsync();

        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan).Should().BeFalse();
    }

    [Fact]
    public async Task RealTime_Dispose_IdleThread_EndsIt()
    {
        var fired = new TaskCompletionSource<Thread>(TaskCreationOptions.RunContinuationsAsynchronously);
        var timer = new DedicatedTimerThread(_ => fired.TrySetResult(Thread.CurrentThread), null, ThreadName);
        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        Thread thread = await fired.Task.WaitAsync(TestTime.HangGuard);

        // Let the thread go back to sleeping with nothing armed: only Dispose can wake it.
        await Task.Delay(TimeSpan.FromMilliseconds(100));
        timer.Dispose();

        thread.Join(TestTime.HangGuard).Should().BeTrue("a disposed timer leaves no thread behind");
    }
}
