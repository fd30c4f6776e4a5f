namespace RunSupervisor;

/// <summary>
/// A point-in-time description of the starts waiting for admission in one lane, as returned by
/// <see cref="ActiveRunRegistry.GetQueueSnapshot"/>: those waiting for their session and those waiting for a slot.
/// </summary>
/// <param name="Lane">The lane; <see langword="null"/> for the default lane.</param>
/// <param name="Waiting">How many starts of the lane wait.</param>
/// <param name="OldestQueuedAt">When the lane's oldest waiting start began to wait; <see langword="null"/> when none waits.</param>
public sealed record LaneQueueInfo(string? Lane, int Waiting, DateTimeOffset? OldestQueuedAt);
