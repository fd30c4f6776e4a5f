namespace RunSupervisor;

/// <summary>What a start does when its session already has an active run.</summary>
public enum SessionBusyBehavior
{
    /// <summary>The start fails with <see cref="SessionBusyException"/> (<see cref="ActiveRunRegistry.TryStart(string, out RunHandle?, RunStartOptions?)"/> returns <see langword="false"/>).</summary>
    Reject,

    /// <summary>
    /// The active run is replaced: it is aborted and ends at once with <see cref="RunEndReason.Superseded"/>. A background
    /// start (<see cref="RunStartOptions.Background"/>) replaces only a background run: a foreground run refuses it as
    /// <see cref="Reject"/> would, since background work never ends a user's run.
    /// </summary>
    Supersede,

    /// <summary>
    /// The start waits, first in, first out per session, until the active run leaves the registry (by release, timeout,
    /// supersede or force eviction) and is then admitted; at most <see cref="RunStartOptions.QueueTimeout"/>. Only
    /// <see cref="ActiveRunRegistry.StartAsync(string, RunStartOptions?, CancellationToken)"/> and <c>RunAsync</c> wait:
    /// the synchronous <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> treats it as <see cref="Reject"/>.
    /// </summary>
    Wait,
}
