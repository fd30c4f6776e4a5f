namespace RunSupervisor.Tests.TestSupport;

/// <summary>A fake clock that runs an action on its n-th timestamp read from now, once.</summary>
internal sealed class ReadHookClock(DateTimeOffset start) : FakeTimeProvider(start)
{
    private int _readsLeft;
    private Action? _hook;

    public bool HookRan { get; private set; }

    public void OnRead(int readNumber, Action hook)
    {
        _readsLeft = readNumber;
        _hook = hook;
    }

    public override long GetTimestamp()
    {
        if (_hook is { } hook && --_readsLeft == 0)
        {
            // Cleared first: the hook reads the clock itself.
            _hook = null;
            hook();
            HookRan = true;
        }

        return base.GetTimestamp();
    }
}
