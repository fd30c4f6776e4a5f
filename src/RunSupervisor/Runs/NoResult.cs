namespace RunSupervisor;

/// <summary>The result type of a supervised invocation whose provider returns a plain <see cref="Task"/>.</summary>
internal readonly struct NoResult;
