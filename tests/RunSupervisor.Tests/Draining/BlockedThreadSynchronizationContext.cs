namespace RunSupervisor.Tests.Draining;

/// <summary>
/// The synchronization context of a UI thread that is blocked waiting for a task: whatever is posted to it never runs.
/// A registry task that needs its caller's context to finish would hang such a caller.
/// </summary>
internal sealed class BlockedThreadSynchronizationContext : SynchronizationContext
{
    private int _posted;

    /// <summary>Gets how many callbacks were posted (and never run).</summary>
    public int Posted => Volatile.Read(ref _posted);

    public override void Post(SendOrPostCallback d, object? state) => Interlocked.Increment(ref _posted);

    public override void Send(SendOrPostCallback d, object? state) => throw new InvalidOperationException("The thread is blocked.");

    /// <summary>Calls <paramref name="call"/> with this context as the current one, then puts the previous one back.</summary>
    public T Run<T>(Func<T> call)
    {
        SynchronizationContext? previous = Current;
        SetSynchronizationContext(this);
        try
        {
            return call();
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }
}
