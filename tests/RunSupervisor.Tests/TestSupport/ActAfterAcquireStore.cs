using RunSupervisor.Leasing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>A store whose next acquire waits for <see cref="Gate"/>, then runs <see cref="AfterAcquire"/> once after the store answered it.</summary>
internal sealed class ActAfterAcquireStore(IRunLeaseStore inner) : ForwardingLeaseStore(inner)
{
    public TaskCompletionSource? Gate { get; set; }

    public Action? AfterAcquire { get; set; }

    public override async ValueTask<RunLeaseAcquireResult> AcquireAsync(RunLeaseRequest request, CancellationToken cancellationToken = default)
    {
        if (Gate is { } gate)
        {
            Gate = null;
            await gate.Task;
        }

        RunLeaseAcquireResult result = await Inner.AcquireAsync(request, cancellationToken);
        if (AfterAcquire is { } after)
        {
            AfterAcquire = null;
            after();
        }

        return result;
    }
}
