namespace RunSupervisor;

/// <summary>One leased start's place in its session's <see cref="RemoteWaitList"/>; its fields are written under the list's lock.</summary>
internal sealed class RemoteWaiter(string sessionId)
{
    private TaskCompletionSource _wake = NewSignal();

    public string SessionId { get; } = sessionId;

    /// <summary>Gets or sets the start's node in its session's list; <see langword="null"/> once it left.</summary>
    public LinkedListNode<RemoteWaiter>? Node { get; set; }

    /// <summary>Gets or sets a value indicating whether the start is trying to take the session (entering locally, or asking the store).</summary>
    public bool InAttempt { get; set; }

    /// <summary>Gets or sets a value indicating whether the store has told the start that another host holds the session.</summary>
    public bool HeardHeld { get; set; }

    /// <summary>Gets why the list failed the start, if it did.</summary>
    public Exception? Failure { get; set; }

    /// <summary>Gets the signal of the start's current wait.</summary>
    public Task Wake => _wake.Task;

    /// <summary>A fresh signal for the next wait, unless the current one has not fired yet.</summary>
    public void ArmLocked()
    {
        if (_wake.Task.IsCompleted)
        {
            _wake = NewSignal();
        }
    }

    /// <summary>Ends the start's current wait (continuations run asynchronously, never under the list's lock).</summary>
    public void WakeLocked() => _wake.TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
