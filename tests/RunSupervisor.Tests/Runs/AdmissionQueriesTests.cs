using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// The waiting-start queries, <see cref="ActiveRunRegistry.GetQueuedCount(string)"/> and
/// <see cref="ActiveRunRegistry.GetQueueSnapshot"/>: they validate the session id and refuse a disposed registry.
/// </summary>
public sealed class AdmissionQueriesTests
{
    [Fact]
    public void GetQueuedCount_InvalidSessionId_ThrowsNamingTheParameter()
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => r.GetQueuedCount(null!)).Should().Throw<ArgumentNullException>().WithParameterName("sessionId");
        f.Registry.Invoking(r => r.GetQueuedCount(string.Empty)).Should().Throw<ArgumentException>().WithParameterName("sessionId");
        f.Registry.Invoking(r => r.GetQueuedCount(new string('x', ActiveRunRegistry.MaxSessionIdLength + 1))).Should().Throw<ArgumentException>().WithParameterName("sessionId");
    }

    [Fact]
    public void GetQueuedCount_DisposedRegistry_ThrowsObjectDisposed()
    {
        using var f = new RegistryFixture();
        f.Registry.Dispose();

        f.Registry.Invoking(r => r.GetQueuedCount("s1")).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void GetQueueSnapshot_DisposedRegistry_ThrowsObjectDisposed()
    {
        using var f = new RegistryFixture();
        f.Registry.Dispose();

        f.Registry.Invoking(r => r.GetQueueSnapshot()).Should().Throw<ObjectDisposedException>();
    }
}
