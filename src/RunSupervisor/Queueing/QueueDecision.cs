namespace RunSupervisor;

/// <summary>The policy's answer for one <see cref="QueueRequest"/>.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Reason">Why, in a short stable phrase the host can log (see <see cref="QueueDecisionReasons"/>).</param>
public readonly record struct QueueDecision(QueueAction Action, string Reason);
