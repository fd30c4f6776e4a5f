namespace RunSupervisor;

/// <summary>
/// One run's ticket, issued by <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/>. Dispose it when
/// the run is over (a <c>using</c> block); pass <see cref="AbortToken"/> to the provider call.
/// </summary>
/// <remarks>
/// <para>All members are thread-safe. Disposal is idempotent and never throws: disposing a handle that is no
/// longer its session's current run (it was evicted, superseded or already released) changes nothing in the
/// registry, so a late <c>finally</c> can never remove a newer run.</para>
/// <para>A run leaves the registry exactly once, and <see cref="Completion"/> completes exactly once, after
/// the registry entry is gone and <see cref="ActiveRunRegistry.RunEnded"/> has been raised.</para>
/// </remarks>
public sealed class RunHandle : IDisposable, IAsyncDisposable
{
    internal RunHandle(RunEntry entry) => Entry = entry;

    /// <summary>Gets the session this run belongs to.</summary>
    public string SessionId => Entry.SessionId;

    /// <summary>
    /// Gets the run's id: unique within the registry and increasing in start order, so a newer run on the same
    /// session always has a larger id.
    /// </summary>
    public long RunId => Entry.RunId;

    /// <summary>
    /// Gets the run's fencing token: strictly increasing per session, so shared state written on behalf of a run can
    /// reject writes that carry a smaller token than the last one it accepted. Without a lease store it equals
    /// <see cref="RunId"/>.
    /// </summary>
    public long FencingToken => Entry.FencingToken;

    /// <summary>Gets when the run started, from the registry's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset StartedAt => Entry.StartedAt;

    /// <summary>Gets the run's current deadline; <see cref="TryExtendDeadline(TimeSpan)"/> may move it later.</summary>
    public DateTimeOffset Deadline => Entry.Deadline;

    /// <summary>
    /// Gets when the run left the registry, from the registry's <see cref="TimeProvider"/>; <see langword="null"/>
    /// while it is still in it (running or aborting).
    /// </summary>
    public DateTimeOffset? EndedAt => Entry.HasEnded ? Entry.ToWallClock(Entry.EndedAtTicks) : null;

    /// <summary>
    /// Gets the token the provider call must observe. It is cancelled when the run is aborted, times out, stalls (its
    /// idle timeout), is superseded or force-evicted, loses its lease, or the registry is disposed; it is not cancelled
    /// by a normal release.
    /// </summary>
    /// <remarks>
    /// Cancellation callbacks registered on it run on the caller's thread only for an explicit
    /// <see cref="Abort(string?)"/> or <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/> (as
    /// <see cref="CancellationTokenSource.Cancel()"/> does); when the registry itself aborts or ends the run (deadline,
    /// eviction, supersede, disposal, drain) they run on the thread pool, and the registry never waits for them.
    /// </remarks>
    public CancellationToken AbortToken => Entry.Token;

    /// <summary>Gets when the run last reported progress (<see cref="ReportProgress"/>); its start until the first report.</summary>
    public DateTimeOffset LastProgressAt => Entry.ToWallClock(Entry.LastProgressTicks);

    /// <summary>Gets the run's status.</summary>
    public RunStatus Status => Entry.Status;

    /// <summary>
    /// Gets a value indicating whether this run is still its session's entry in the registry. Once false it
    /// stays false; a host can use it to suppress late output of an evicted or superseded run.
    /// </summary>
    public bool IsCurrent => Entry.Owner.IsCurrent(Entry);

    /// <summary>
    /// Gets a task that completes, once, with the reason the run left the registry. It never faults or is
    /// cancelled, and its continuations run asynchronously.
    /// </summary>
    public Task<RunEndReason> Completion => Entry.Completion;

    /// <summary>Gets the registry's record of this run.</summary>
    internal RunEntry Entry { get; }

    /// <summary>
    /// Hands the run's provider task to the registry. When it settles (completes, faults or is cancelled) the
    /// run is released with the matching reason. If the run is evicted, superseded or loses its lease while the task is
    /// still pending, the run goes to the abandoned ledger until the task settles; its exception is always observed.
    /// </summary>
    /// <param name="providerTask">The task of the provider call that uses <see cref="AbortToken"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="providerTask"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A task was already attached to this run.</exception>
    public void Attach(Task providerTask)
    {
        ArgumentNullException.ThrowIfNull(providerTask);
        Entry.Owner.Attach(Entry, providerTask);
    }

    /// <summary>
    /// Aborts the run: cancels <see cref="AbortToken"/> and starts the grace period, after which the run is
    /// force-evicted if it has not settled. The token's callbacks run on this thread before the method returns, as
    /// with <see cref="CancellationTokenSource.Cancel()"/>; an exception from one is logged, not thrown.
    /// </summary>
    /// <param name="reason">Why the run is aborted: the end's <see cref="RunEndedEventArgs.Detail"/> and the log line.</param>
    /// <returns><see langword="true"/> if this call aborted the run; <see langword="false"/> if it was already aborting (by the watchdog or another caller, whose reason stands) or has ended.</returns>
    public bool Abort(string? reason = null) => Entry.Owner.Abort(Entry, reason ?? RunEnds.HandleAbortText);

    /// <summary>
    /// Moves the deadline later by <paramref name="extension"/>, for a long step such as a compaction. The
    /// deadline never passes <see cref="StartedAt"/> + <see cref="RunSupervisorOptions.MaxRunDuration"/>;
    /// progress alone never renews it.
    /// </summary>
    /// <param name="extension">How much later the deadline should be; greater than zero.</param>
    /// <returns><see langword="true"/> if the deadline moved; <see langword="false"/> (and nothing changed) if the run is not running, its deadline has already passed (a watchdog that is late to act on it still ends it), or the cap would be passed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="extension"/> is zero or negative.</exception>
    public bool TryExtendDeadline(TimeSpan extension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(extension, TimeSpan.Zero);
        return Entry.Owner.TryExtendDeadline(Entry, extension);
    }

    /// <summary>
    /// Records that the run is making progress (a streamed token, a tool call): restarts its idle clock
    /// (<see cref="RunStartOptions.IdleTimeout"/>). Takes no lock and does not allocate. Progress never moves
    /// <see cref="Deadline"/> or the eviction instant: a run that keeps reporting still ends at its deadline.
    /// </summary>
    /// <remarks>On <see cref="TimeProvider.System"/> the registry's clock is the system tick, so the report's instant (and
    /// <see cref="LastProgressAt"/>) is accurate to that tick's resolution, 1-16 ms by platform.</remarks>
    public void ReportProgress() => Entry.ReportProgress(Entry.Owner.NowTicks());

    /// <summary>
    /// Releases the run if it is still its session's current run; otherwise does nothing to the registry.
    /// Idempotent; never throws.
    /// </summary>
    public void Dispose() => Entry.Owner.Release(Entry);

    /// <summary>Releases the run; see <see cref="Dispose"/>.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    /// <summary>Returns a short description of the run for debugging.</summary>
    /// <returns>The session id, run id and status.</returns>
    public override string ToString() => $"Run {RunId} (session '{SessionId}', {Status})";
}
