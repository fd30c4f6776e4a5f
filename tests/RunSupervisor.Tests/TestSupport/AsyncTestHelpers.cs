namespace RunSupervisor.Tests.TestSupport;

/// <summary>Helpers for the RunAsync, WaitForRunEndAsync and DrainAsync tests.</summary>
internal static class AsyncTestHelpers
{
    /// <summary>
    /// A real-time bound on awaiting a task that the test expects to be complete (or about to complete on a
    /// thread-pool continuation). It only turns a hang into a failure; it is never the behaviour under test.
    /// </summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    /// <summary>One tick of fake time: the smallest step before or past an instant.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    public static Task Guard(this Task task) => task.WaitAsync(HangGuard);

    public static Task<T> Guard<T>(this Task<T> task) => task.WaitAsync(HangGuard);

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
