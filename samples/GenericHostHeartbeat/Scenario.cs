namespace GenericHostHeartbeat;

/// <summary>
/// The fixed script this sample plays, so that every run (and CI's smoke run) tells the same story. The RunSupervisor
/// timeouts live in <c>appsettings.json</c>; the numbers here are chosen against them (RunTimeout 2.5 s, GracePeriod 2 s).
/// </summary>
internal static class Scenario
{
    /// <summary>The one agent session the heartbeat wakes.</summary>
    public const string SessionId = "assistant-main";

    /// <summary>
    /// Every fifth agent turn hangs, starting with the second: turns 2, 7, 12, … A fixed pattern rather than a random
    /// one, so that a CI run of 12 s always contains one hang that the watchdog recovers (turn 2) and one that the
    /// shutdown drain has to deal with (turn 7).
    /// </summary>
    public const int HangEvery = 5;

    /// <summary>The first turn that hangs; see <see cref="HangEvery"/>.</summary>
    public const int FirstHang = 2;

    /// <summary>
    /// Drops in a row that the health check still calls healthy. Below the library's default of 3 so that the streak of a
    /// hung run (a drop at each tick until the eviction 4.5 s after its start) shows up as Degraded before the eviction.
    /// </summary>
    public const int MaxHeartbeatDropStreak = 2;

    /// <summary>The heartbeat's period: the host wakes the agent once a second.</summary>
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a healthy turn's model call takes. Well inside one heartbeat interval, also for the turn that the owed
    /// heartbeat starts half a tick early (at the eviction, 4.5 s after a tick): it ends before the next tick, so
    /// healthy turns never drop heartbeats and every drop in the log belongs to a hung turn.
    /// </summary>
    public static readonly TimeSpan HealthyCallDuration = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// How long a hung model call takes to come back, ignoring its cancellation token all the while (a dead connection
    /// that the OS gives up on eventually). Far past deadline + grace, so the watchdog has to evict; short enough that an
    /// interactive run shows the abandoned call settling (<c>AbandonedRunSettled</c>) and leaving the ledger.
    /// </summary>
    public static readonly TimeSpan HungCallDuration = TimeSpan.FromSeconds(20);

    /// <summary>
    /// When the first health report is printed. Half a tick off the heartbeat (reports at 2.5 s, 5.5 s, 8.5 s, …) so a
    /// report never races a tick, and each report lands in a different phase of the first hang: running, dropping, evicted.
    /// </summary>
    public static readonly TimeSpan FirstHealthReport = TimeSpan.FromSeconds(2.5);

    /// <summary>The period of the health report.</summary>
    public static readonly TimeSpan HealthReportInterval = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The host's shutdown timeout: the bound on the shutdown drain. Above the drain's own wait (grace period + 1 s), as
    /// the RunSupervisor.Hosting README asks, and well below CI's patience.
    /// </summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Whether the given agent turn (1-based) hangs.</summary>
    public static bool Hangs(int turn) => turn % HangEvery == FirstHang % HangEvery;
}
