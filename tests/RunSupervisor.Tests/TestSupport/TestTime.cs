namespace RunSupervisor.Tests.TestSupport;

/// <summary>The time constants every test of the core shares, defined once.</summary>
internal static class TestTime
{
    /// <summary>
    /// A real-time bound on awaiting something the test expects to be complete (or about to complete on a thread-pool
    /// continuation). It only turns a hang into a failure; it is never the behaviour under test (time under test comes
    /// from a <see cref="FakeTimeProvider"/>).
    /// </summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    /// <summary>One tick of fake time: the smallest step before or past an instant, so one tick before it is "not yet".</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    /// <summary>
    /// The coarsest resolution of the system tick (<see cref="Environment.TickCount64"/>), the registry's clock on
    /// <see cref="TimeProvider.System"/>: measured on the high-resolution clock, a real-time deadline may pass up to this
    /// much early, as a <see cref="CancellationTokenSource"/> timeout may.
    /// </summary>
    public static readonly TimeSpan SystemTickResolution = TimeSpan.FromMilliseconds(16);

    /// <summary>A wait timeout long enough that it never elapses in a test that does not advance the fake clock by that much.</summary>
    public static readonly TimeSpan WaitTimeout = TimeSpan.FromMinutes(1);
}
