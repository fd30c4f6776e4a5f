using RunSupervisor.Leasing;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>The core's reference store on the real clock: every host shares the one instance.</summary>
public sealed class InMemoryHarness : LeaseStoreHarness
{
    private readonly InMemoryRunLeaseStore _store = new();

    public override Task<IRunLeaseStore> CreateStoreAsync() => Task.FromResult<IRunLeaseStore>(_store);

    public override Task RestartAsync()
    {
        _store.Restart();
        return Task.CompletedTask;
    }

    public override Task DeleteLeaseAsync(string sessionId)
    {
        _store.RemoveLease(sessionId);
        return Task.CompletedTask;
    }

    public override Task TakeDownAsync()
    {
        _store.BeginOutage();
        return Task.CompletedTask;
    }

    public override Task BringBackAsync()
    {
        _store.EndOutage();
        return Task.CompletedTask;
    }

    // The in-memory store answers synchronously: a registry's subscription is in place before its first start returns.
    public override Task WaitUntilSubscribedAsync(string hostId, TimeSpan within) => Task.CompletedTask;

    public override ValueTask DisposeAsync() => default;
}
