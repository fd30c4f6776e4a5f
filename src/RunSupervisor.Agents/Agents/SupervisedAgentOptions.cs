using Microsoft.Agents.AI;

namespace RunSupervisor.Agents;

/// <summary>
/// Options of a <see cref="SupervisedAgent"/>. They are read once, when the agent is created; later changes to this
/// object do not reach it.
/// </summary>
public sealed class SupervisedAgentOptions
{
    /// <summary>
    /// The <see cref="AgentRunOptions.AdditionalProperties"/> key that marks one turn as a background turn (for
    /// example a heartbeat): <see langword="true"/> makes it a background run, which a later foreground turn on the
    /// same session preempts. Read only when <see cref="BackgroundSelector"/> is <see langword="null"/>.
    /// </summary>
    public const string BackgroundPropertyKey = "runsupervisor.background";

    /// <summary>
    /// Gets or sets the function that picks the session a turn belongs to; <see langword="null"/> (the default) uses
    /// the id <see cref="SupervisedAgent.GetSessionId(AgentSession)"/> keeps in the <see cref="AgentSession"/>'s state.
    /// </summary>
    /// <remarks>
    /// When set, it alone decides (return <c>session is null ? null : SupervisedAgent.GetSessionId(session)</c> to
    /// fall back to the default). A turn whose session id is <see langword="null"/> passes through unsupervised: it is
    /// counted on the metric <c>runsupervisor.agent.unsupervised_runs</c> and logged at Debug. Any other value must be
    /// a valid session id (1 to <see cref="ActiveRunRegistry.MaxSessionIdLength"/> characters, not only white space),
    /// or the turn fails with <see cref="ArgumentException"/>. It is called once per turn, on the calling thread, and
    /// must not throw.
    /// </remarks>
    public Func<AgentSession?, AgentRunOptions?, string?>? SessionIdSelector { get; set; }

    /// <summary>
    /// Gets or sets what a turn does when its session already has an active run: fail with
    /// <see cref="SessionBusyException"/> (<see cref="SessionBusyBehavior.Reject"/>, the default), supersede it
    /// (<see cref="SessionBusyBehavior.Supersede"/>), or wait for it to end (<see cref="SessionBusyBehavior.Wait"/>, in
    /// order, at most <see cref="RunStartOptions.QueueTimeout"/>; a streaming turn waits in its first
    /// <c>MoveNextAsync</c>). A foreground turn preempts a background run whatever this says.
    /// </summary>
    public SessionBusyBehavior WhenBusy { get; set; } = SessionBusyBehavior.Reject;

    /// <summary>
    /// Gets or sets the function that says whether a turn is a background turn (a heartbeat, a scheduled job), which a
    /// later foreground turn on the same session preempts; <see langword="null"/> (the default) reads
    /// <see cref="BackgroundPropertyKey"/> from <see cref="AgentRunOptions.AdditionalProperties"/>. Called once per
    /// supervised turn, on the calling thread; it must not throw.
    /// </summary>
    public Func<AgentSession?, AgentRunOptions?, bool>? BackgroundSelector { get; set; }

    /// <summary>
    /// Gets or sets per-run overrides (timeout, grace period, queue timeout, idle timeout, lane) for every supervised
    /// turn of this agent; <see langword="null"/> (the default) uses the registry's options. Validated when the agent
    /// is built. Each streamed update is progress for <see cref="RunStartOptions.IdleTimeout"/>. Its
    /// <see cref="RunStartOptions.WhenBusy"/> must be left at <see cref="SessionBusyBehavior.Reject"/> (use
    /// <see cref="WhenBusy"/>) and its <see cref="RunStartOptions.Background"/> at <see langword="false"/> (use
    /// <see cref="BackgroundSelector"/> or <see cref="BackgroundPropertyKey"/>).
    /// </summary>
    public RunStartOptions? RunStartOptions { get; set; }
}
