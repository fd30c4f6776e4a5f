using System.Collections.Concurrent;

namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

/// <summary>
/// Fails a test whose tasks fault unobserved: created with the test class, disposed after the test, when it collects
/// garbage (so that faulted tasks nobody awaited are finalized) and asserts that no
/// <see cref="TaskScheduler.UnobservedTaskException"/> was raised meanwhile. The event is process-wide, so a fault from
/// a test running in parallel fails this one too: any such fault is a bug either way.
/// </summary>
internal sealed class UnobservedTaskExceptionMonitor : IDisposable
{
    private static readonly ConcurrentQueue<Exception> Seen = new();

    static UnobservedTaskExceptionMonitor() => TaskScheduler.UnobservedTaskException += static (_, e) => Seen.Enqueue(e.Exception);

    private readonly int _before = Seen.Count;

    public void Dispose()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Seen.Skip(_before).Should().BeEmpty("no task may fault without being observed");
    }
}
