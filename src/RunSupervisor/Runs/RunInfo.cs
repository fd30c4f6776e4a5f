namespace RunSupervisor;

/// <summary>
/// A point-in-time description of an active run, as returned by <see cref="ActiveRunRegistry.GetActiveRuns"/>
/// and <see cref="ActiveRunRegistry.TryGetRun(string, out RunInfo?)"/>.
/// </summary>
/// <param name="SessionId">The session the run belongs to.</param>
/// <param name="RunId">The registry-unique, increasing id of the run.</param>
/// <param name="StartedAt">When the run started, from the registry's <see cref="TimeProvider"/>.</param>
/// <param name="Deadline">When the run is (or was) aborted unless it ends first.</param>
/// <param name="Status">The run's status when the snapshot was taken.</param>
/// <param name="FencingToken">The run's fencing token (see <see cref="RunHandle.FencingToken"/>).</param>
/// <param name="LastProgressAt">When the run last reported progress (<see cref="RunHandle.ReportProgress"/>); its start until then.</param>
/// <param name="Background">Whether the run is background work a foreground start preempts (<see cref="RunStartOptions.Background"/>).</param>
/// <param name="Lane">The run's admission lane; <see langword="null"/> for the default lane.</param>
public sealed record RunInfo(string SessionId, long RunId, DateTimeOffset StartedAt, DateTimeOffset Deadline, RunStatus Status, long FencingToken, DateTimeOffset LastProgressAt, bool Background, string? Lane);
