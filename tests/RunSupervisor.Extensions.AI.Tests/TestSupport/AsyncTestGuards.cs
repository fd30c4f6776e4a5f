namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

/// <summary>
/// The real-time hang guard and the one-tick fake-time step the chat-client and agent suites both await and advance
/// by. Linked into the agent tests rather than copied, so both suites bound their waits the same way.
/// </summary>
internal static class AsyncTestGuards
{
    /// <summary>
    /// A real-time bound on awaiting a task the test expects to complete (now, or on a thread-pool continuation). It
    /// only turns a hang into a failure; it is never the behaviour under test.
    /// </summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    /// <summary>One tick of fake time: the smallest step before or past an instant.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="HangGuard"/>, so a hang fails the test instead of stalling the run.</summary>
    public static Task Guard(this Task task) => task.WaitAsync(HangGuard);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="HangGuard"/>, so a hang fails the test instead of stalling the run.</summary>
    public static Task<T> Guard<T>(this Task<T> task) => task.WaitAsync(HangGuard);
}
