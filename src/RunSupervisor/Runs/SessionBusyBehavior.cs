namespace RunSupervisor;

/// <summary>What a start does when its session already has an active run.</summary>
public enum SessionBusyBehavior
{
    /// <summary>The start fails with <see cref="SessionBusyException"/> (<see cref="ActiveRunRegistry.TryStart(string, out RunHandle?, RunStartOptions?)"/> returns <see langword="false"/>).</summary>
    Reject,

    /// <summary>The active run is replaced: it is aborted and ends at once with <see cref="RunEndReason.Superseded"/>.</summary>
    Supersede,
}
