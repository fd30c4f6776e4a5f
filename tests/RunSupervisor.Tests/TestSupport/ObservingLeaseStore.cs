using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// The shared store, seen from one host's side: it keeps the observer the registry subscribed with, so a test can
/// deliver notifications itself; counts the registry's acquires, owner lookups and subscribe calls; and lets the test
/// make the subscribe call fail or wait for a gate, and the unsubscribe fail.
/// </summary>
internal sealed class ObservingLeaseStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
{
    private readonly TaskCompletionSource _unsubscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _acquireCalls;
    private int _getOwnerCalls;
    private int _subscribeCalls;

    /// <summary>Gets or sets what the next subscribe calls throw; <see langword="null"/> lets them through.</summary>
    public Exception? SubscribeFailure { get; set; }

    /// <summary>Gets a gate every subscribe call waits for before it reaches the shared store.</summary>
    public TaskCompletionSource? SubscribeGate { get; init; }

    /// <summary>Gets what disposing the subscription throws (after <see cref="Unsubscribed"/> completes).</summary>
    public Exception? UnsubscribeFailure { get; init; }

    /// <summary>Gets the observer of the last subscribe call, failed or not.</summary>
    public IRunLeaseObserver? Observer { get; private set; }

    public int AcquireCalls => Volatile.Read(ref _acquireCalls);

    public int GetOwnerCalls => Volatile.Read(ref _getOwnerCalls);

    public int SubscribeCalls => Volatile.Read(ref _subscribeCalls);

    /// <summary>Gets a task that completes when the registry disposes its subscription.</summary>
    public Task Unsubscribed => _unsubscribed.Task;

    public override ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _acquireCalls);
        return Inner.AcquireAsync(request, cancellationToken);
    }

    public override ValueTask<RunLeaseInfo?> GetOwnerAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _getOwnerCalls);
        return Inner.GetOwnerAsync(sessionId, cancellationToken);
    }

    public override async ValueTask<IAsyncDisposable> SubscribeAsync(string hostId, IRunLeaseObserver observer, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _subscribeCalls);
        Observer = observer;
        if (SubscribeFailure is { } failure)
        {
            throw failure;
        }

        if (SubscribeGate is { } gate)
        {
            await gate.Task.ConfigureAwait(false);
        }

        return new Subscription(this, await base.SubscribeAsync(hostId, observer, cancellationToken).ConfigureAwait(false));
    }

    private sealed class Subscription(ObservingLeaseStore owner, IAsyncDisposable inner) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            owner._unsubscribed.TrySetResult();
            if (owner.UnsubscribeFailure is { } failure)
            {
                throw failure;
            }

            await inner.DisposeAsync().ConfigureAwait(false);
        }
    }
}
