using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>A store that runs <see cref="AfterOwnerQuery"/> once, right after answering who holds a session, and can hold its answers about one session.</summary>
internal sealed class OwnerQueryHookStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
{
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action? _afterOwnerQuery;
    private int _heldQueries;
    private int _answeredHeldQueries;

    public Action? AfterOwnerQuery
    {
        get => Volatile.Read(ref _afterOwnerQuery);
        set => Volatile.Write(ref _afterOwnerQuery, value);
    }

    /// <summary>Gets or sets the session whose owner queries are held until <see cref="ReleaseHeldQueries"/>.</summary>
    public string? HoldQueriesOf { get; set; }

    public int HeldQueries => Volatile.Read(ref _heldQueries);

    /// <summary>Gets how many held queries have been answered since <see cref="ReleaseHeldQueries"/>.</summary>
    public int AnsweredHeldQueries => Volatile.Read(ref _answeredHeldQueries);

    /// <summary>Gets the session whose release messages never reach the subscriber (lost messages).</summary>
    public string? DropReleasesOf { get; init; }

    public override ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default)
        => base.SubscribeAsync(hostId, DropReleasesOf is null ? observer : new DroppingObserver(observer, DropReleasesOf), cancellationToken);

    public void ReleaseHeldQueries() => _held.TrySetResult();

    public override async ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        RunLeaseInfo? owner = await Inner.GetOwnerAsync(sessionId, cancellationToken);
        if (sessionId == HoldQueriesOf)
        {
            Interlocked.Increment(ref _heldQueries);
            await _held.Task;
            Interlocked.Increment(ref _answeredHeldQueries);
            return owner;
        }

        Interlocked.Exchange(ref _afterOwnerQuery, null)?.Invoke();
        return owner;
    }

    private sealed class DroppingObserver(IRunLeaseObserver inner, string sessionId) : IRunLeaseObserver
    {
        public void OnNotification(RunLeaseNotification notification)
        {
            if (notification.Kind != RunLeaseNotificationKind.Released || notification.SessionId != sessionId)
            {
                inner.OnNotification(notification);
            }
        }
    }
}
