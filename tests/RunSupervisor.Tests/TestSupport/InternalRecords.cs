namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// Hand-built instances of the core's internal records (<see cref="StartSpec"/>, <see cref="RunEntry"/>,
/// <see cref="PendingStart"/>) for the tests that drive the tables and queues directly, without a registry's start.
/// </summary>
/// <remarks>
/// The defaults are what a start made with the library's default options would carry, so a test names only the values
/// its behaviour depends on. The records are built the way the registry builds them (the session hash from
/// <see cref="SessionTable.Hash(string)"/>), so the tables find them where they would find a real run or start.
/// </remarks>
internal static class InternalRecords
{
    /// <summary>The run timeout a spec gets unless a test names one: the default <see cref="RunSupervisorOptions.RunTimeout"/>, 10 minutes.</summary>
    public const long TimeoutTicks = 10 * TimeSpan.TicksPerMinute;

    /// <summary>The grace period a spec gets unless a test names one: the default <see cref="RunSupervisorOptions.GracePeriod"/>, 30 seconds.</summary>
    public const long GraceTicks = 30 * TimeSpan.TicksPerSecond;

    /// <summary>
    /// The queue timeout a <see cref="Pending"/> start gets unless a test names a spec: the default
    /// <see cref="RunSupervisorOptions.QueueTimeout"/>, 2 minutes.
    /// </summary>
    public const long QueueTimeoutTicks = 2 * TimeSpan.TicksPerMinute;

    /// <summary>
    /// Makes a start's resolved options. Without arguments it is a start under default options: the default timeout and
    /// grace, no idle timeout, no queue timeout (a start that is never queued does not need one), rejected when its
    /// session is busy (the <see cref="RunStartOptions"/> default), in the foreground and in the default lane.
    /// </summary>
    public static StartSpec Spec(
        long timeoutTicks = TimeoutTicks,
        long graceTicks = GraceTicks,
        long idleTicks = 0,
        long queueTimeoutTicks = 0,
        SessionBusyBehavior whenBusy = SessionBusyBehavior.Reject,
        bool background = false,
        int lane = 0)
        => new(timeoutTicks, graceTicks, idleTicks, queueTimeoutTicks, whenBusy, background, lane);

    /// <summary>
    /// Makes a run's record, not yet in any table. The session defaults to "s" because most tests need one session and
    /// only its being the same matters; the run starts at tick 0, so its instants read as offsets from its start; the
    /// spec defaults to <see cref="Spec"/>'s. The wall-clock start is always the Unix epoch: these tests read only the
    /// monotonic ticks, so any fixed value does, and a recognisable one stands out if a report ever shows it.
    /// </summary>
    /// <param name="owner">The registry the run belongs to; the tests own and dispose it.</param>
    /// <param name="sessionId">The run's session.</param>
    /// <param name="startedAtTicks">The monotonic instant the run started; its deadline and idle clock count from it.</param>
    /// <param name="spec">The run's options; <see langword="null"/> for <see cref="Spec"/>'s defaults.</param>
    /// <param name="leased">Whether the registry has a lease store; only such a run carries lease state.</param>
    /// <param name="runId">The id a table would assign as the run enters it; 0 (unassigned) for a run that never enters one.</param>
    public static RunEntry Entry(
        ActiveRunRegistry owner,
        string sessionId = "s",
        long startedAtTicks = 0,
        StartSpec? spec = null,
        bool leased = false,
        long runId = 0)
        => new(owner, sessionId, SessionTable.Hash(sessionId), startedAtTicks, DateTimeOffset.UnixEpoch.UtcTicks, spec ?? Spec()) { Leased = leased, RunId = runId };

    /// <summary>
    /// Makes a start waiting for admission, not yet in any queue, with no observer (nobody hears its run's end). Its spec
    /// defaults to a start that waits when its session is busy, with the default queue timeout, because that is the
    /// start that gets queued; it is enqueued at tick 0 and its caller never cancels it unless a test passes a token.
    /// </summary>
    /// <param name="owner">The registry the start belongs to; it makes the admitted run.</param>
    /// <param name="sessionId">The start's session.</param>
    /// <param name="spec">The start's options; <see langword="null"/> for a waiting start under default options.</param>
    /// <param name="enqueuedTicks">The monotonic instant the start was queued; its queue timeout counts from it.</param>
    public static PendingStart Pending(
        ActiveRunRegistry owner,
        string sessionId = "s",
        StartSpec? spec = null,
        long enqueuedTicks = 0)
        => new(owner, sessionId, SessionTable.Hash(sessionId), spec ?? Spec(queueTimeoutTicks: QueueTimeoutTicks, whenBusy: SessionBusyBehavior.Wait), observer: null, enqueuedTicks, traceParent: null);
}
