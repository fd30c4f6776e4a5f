namespace RunSupervisor.Extensions.AI;

/// <summary>What a <see cref="SupervisedChatClient"/> does when a call's session already has an active run.</summary>
public enum SessionBusyBehavior
{
    /// <summary>The call fails with <see cref="SessionBusyException"/>; the active run is untouched. The default.</summary>
    Throw = 0,

    /// <summary>
    /// The active run is superseded: its abort token is cancelled, it ends at once with
    /// <see cref="RunEndReason.Superseded"/> (its caller sees an <see cref="OperationCanceledException"/>), and the
    /// new call becomes the session's run.
    /// </summary>
    Supersede = 1,
}
