using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// A registry on a <see cref="FakeTimeProvider"/> with a <see cref="FakeLogger"/> collecting every record,
/// plus a recorder of every <see cref="ActiveRunRegistry.RunEnded"/> notification.
/// </summary>
internal sealed class RegistryFixture : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    public RegistryFixture(RunSupervisorOptions? options = null)
    {
        Options = options ?? new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = Grace };
        Time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        LoggerFactory = new LoggerFactory([LoggerProvider]);
        Registry = new ActiveRunRegistry(Options, Time, LoggerFactory);
        Registry.RunEnded += (_, e) =>
        {
            lock (Ended)
            {
                // Recorded with whether the entry was already gone when the event fired.
                Ended.Add((e, Registry.FindEntry(e.SessionId)?.RunId == e.RunId));
            }
        };
    }

    public RunSupervisorOptions Options { get; }

    public FakeTimeProvider Time { get; }

    public FakeLoggerProvider LoggerProvider { get; } = new();

    public ILoggerFactory LoggerFactory { get; }

    public ActiveRunRegistry Registry { get; }

    /// <summary>Every RunEnded notification, with a flag that is true if the run was still registered when it fired (a bug).</summary>
    public List<(RunEndedEventArgs Args, bool StillRegistered)> Ended { get; } = [];

    public IReadOnlyList<FakeLogRecord> Logs => LoggerProvider.Collector.GetSnapshot();

    public IEnumerable<FakeLogRecord> LogsWithEvent(string eventName) => Logs.Where(r => r.Id.Name == eventName);

    /// <summary>Makes <paramref name="run"/> leave the registry with <paramref name="reason"/>, the way a host would.</summary>
    public void EndRun(RunHandle run, RunEndReason reason)
    {
        switch (reason)
        {
            case RunEndReason.Completed:
                run.Dispose();
                break;
            case RunEndReason.Faulted:
                run.Attach(Task.FromException(new InvalidOperationException("provider failed")));
                break;
            case RunEndReason.Aborted:
                run.Abort("test");
                run.Dispose();
                break;
            case RunEndReason.TimedOut:
                Time.Advance(RegistryFixture.Timeout);
                run.Dispose();
                break;
            case RunEndReason.Superseded:
                Registry.Start(run.SessionId, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });
                break;
            case RunEndReason.ForceEvicted:
                Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(reason), reason, null);
        }
    }

    public void Dispose()
    {
        Registry.Dispose();
        LoggerFactory.Dispose();
    }
}
