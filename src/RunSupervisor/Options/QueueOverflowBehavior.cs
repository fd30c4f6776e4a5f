namespace RunSupervisor;

/// <summary>What a start that would wait does when its session already has <see cref="RunSupervisorOptions.MaxQueuedPerSession"/> starts waiting.</summary>
public enum QueueOverflowBehavior
{
    /// <summary>The new start fails with <see cref="RunQueueFullException"/>; the waiting starts keep their places.</summary>
    RejectNewest,

    /// <summary>The session's oldest waiting start fails with <see cref="RunQueueFullException"/> and the new one joins the end of the queue.</summary>
    CancelOldest,
}
