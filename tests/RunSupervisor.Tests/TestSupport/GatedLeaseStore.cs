using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// A store in front of the shared one (counting releases, as every <see cref="ForwardingLeaseStore"/> does) that, while
/// <see cref="HoldAcquires"/> is set, lets an acquire
/// reach the shared store at once (the lease is taken) but answers it only when the test calls <see cref="Open"/>: a
/// reply still on the wire while the caller gives up or another host moves.
/// </summary>
internal sealed class GatedLeaseStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
{
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets or sets whether the next acquires are held until <see cref="Open"/>.</summary>
    public bool HoldAcquires { get; set; }

    /// <summary>Answers every held acquire, and from then on any acquire made while <see cref="HoldAcquires"/> is set.</summary>
    public void Open() => _opened.TrySetResult();

    public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        bool held = HoldAcquires;
        RunLeaseAcquireResult result = await Inner.AcquireAsync(request, cancellationToken);
        if (held)
        {
            await _opened.Task;
        }

        return result;
    }
}
