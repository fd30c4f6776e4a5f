using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Records a host's lease notifications and lets a test wait for one, on the real clock.</summary>
public sealed class RecordingObserver : IRunLeaseObserver
{
    private readonly Lock _lock = new();
    private readonly List<RunLeaseNotification> _received = [];
    private readonly List<(Func<RunLeaseNotification, bool> Match, TaskCompletionSource<RunLeaseNotification> Done)> _waiters = [];

    public IReadOnlyList<RunLeaseNotification> Received
    {
        get
        {
            lock (_lock)
            {
                return [.. _received];
            }
        }
    }

    public void OnNotification(RunLeaseNotification notification)
    {
        List<TaskCompletionSource<RunLeaseNotification>> done = [];
        lock (_lock)
        {
            _received.Add(notification);
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Match(notification))
                {
                    done.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }

        foreach (TaskCompletionSource<RunLeaseNotification> source in done)
        {
            source.TrySetResult(notification);
        }
    }

    public async Task<RunLeaseNotification> WaitForAsync(Func<RunLeaseNotification, bool> match, TimeSpan? timeout = null)
    {
        var done = new TaskCompletionSource<RunLeaseNotification>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            RunLeaseNotification? already = _received.FirstOrDefault(match);
            if (already is not null)
            {
                return already;
            }

            _waiters.Add((match, done));
        }

        try
        {
            return await done.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"No matching notification arrived; received: [{string.Join(", ", Received.Select(n => $"{n.Kind} {n.SessionId} {n.FencingToken}"))}].");
        }
    }
}
