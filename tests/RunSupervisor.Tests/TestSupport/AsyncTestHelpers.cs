namespace RunSupervisor.Tests.TestSupport;

/// <summary>Helpers for the RunAsync, WaitForRunEndAsync and DrainAsync tests.</summary>
internal static class AsyncTestHelpers
{
    /// <summary>The same value as <see cref="TestTime.HangGuard"/>, under the name the leasing tests use.</summary>
    public static TimeSpan HangGuard => TestTime.HangGuard;

    /// <summary>The same value as <see cref="TestTime.Tick"/>, under the name the leasing tests use.</summary>
    public static TimeSpan Tick => TestTime.Tick;

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="TestTime.HangGuard"/>, so a hang fails instead of blocking.</summary>
    public static Task Guard(this Task task) => task.WaitAsync(TestTime.HangGuard);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="TestTime.HangGuard"/>, so a hang fails instead of blocking.</summary>
    public static Task<T> Guard<T>(this Task<T> task) => task.WaitAsync(TestTime.HangGuard);

    /// <summary>
    /// Looks at <paramref name="condition"/> every few milliseconds of real time until it holds or <paramref name="within"/>
    /// (default <see cref="TestTime.HangGuard"/>) has passed: for work that continuations finish on pool threads, which
    /// no fake clock drives.
    /// </summary>
    /// <returns>Whether the condition held in time.</returns>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan? within = null)
    {
        TimeSpan limit = within ?? TestTime.HangGuard;
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !condition(); await Task.Delay(5))
        {
            if (waited.Elapsed >= limit)
            {
                return condition();
            }
        }

        return true;
    }

    /// <summary>A call whose exception is thrown synchronously (before any task is returned), for <c>Should().Throw</c>.</summary>
    public static Action Sync(Func<object> call) => () => _ = call();

    /// <summary>
    /// Calls the <c>Task&lt;T&gt;</c> overload of RunAsync when <paramref name="generic"/> is true, the <c>Task</c> overload
    /// otherwise, with the same provider delegate (no wrapping, so a provider that throws synchronously or returns
    /// null behaves the same way for both overloads).
    /// </summary>
    public static Task InvokeRunAsync(
        this ActiveRunRegistry registry,
        bool generic,
        string sessionId,
        Func<CancellationToken, Task<int>> provider,
        RunStartOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        if (generic)
        {
            return registry.RunAsync(sessionId, provider, options, cancellationToken);
        }

        // Delegate variance: the same delegate instance, typed so that only the non-generic overload applies.
        Func<CancellationToken, Task> untyped = provider;
        return registry.RunAsync(sessionId, untyped, options, cancellationToken);
    }

    /// <summary>
    /// A provider that honours its token and does nothing else: it completes (cancelled) exactly when the token
    /// is cancelled. The infinite delay is cancellation-driven; it never waits on real time.
    /// </summary>
    public static async Task<int> HonourTokenAsync(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return 0;
    }
}

/// <summary>
/// A <see cref="FakeTimeProvider"/> that records every timer created on it, so a test can prove that a wait
/// arms no polling timer (neither a new one per poll nor a periodic one).
/// </summary>
internal sealed class TimerCountingTimeProvider : FakeTimeProvider
{
    private int _timersCreated;
    private int _periodicTimersCreated;

    public TimerCountingTimeProvider(DateTimeOffset startDateTime)
        : base(startDateTime)
    {
    }

    public int TimersCreated => Volatile.Read(ref _timersCreated);

    public int PeriodicTimersCreated => Volatile.Read(ref _periodicTimersCreated);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        Interlocked.Increment(ref _timersCreated);
        if (period != Timeout.InfiniteTimeSpan && period != TimeSpan.Zero)
        {
            Interlocked.Increment(ref _periodicTimersCreated);
        }

        return base.CreateTimer(callback, state, dueTime, period);
    }
}
