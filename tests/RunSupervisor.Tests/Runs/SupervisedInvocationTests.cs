using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// A RunAsync call whose run ends before its provider gets a thread (the caller's token cancelled, or the run
/// superseded, while the start is being published) never invokes the provider and leaves no trace: the run leaves
/// the abandoned ledger, and the caller's token holds nothing of the call once it has completed.
/// </summary>
public sealed class SupervisedInvocationTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task RunAsync_CallerCancelsAsTheStartIsPublishedWithNoGrace_ProviderNeverRunsAndTheRunLeavesTheLedger()
    {
        using var cts = new CancellationTokenSource();
        using var host = new HookedRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = TimeSpan.Zero });
        host.OnFirst("RunStarted", cts.Cancel);
        bool invoked = false;

        Task<int> call = host.Registry.RunAsync("s", _ =>
        {
            invoked = true;
            return Task.FromResult(1);
        }, cancellationToken: cts.Token);

        (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);
        await host.WaitForLogAsync("AbandonedRunSettled");
        invoked.Should().BeFalse();
        host.Logs("AbandonedRunSettled").Single().GetStructuredStateValue("Outcome").Should().Be("released");
        host.Registry.AbandonedCount.Should().Be(0, "a provider that never ran has nothing left to settle");
    }

    [Fact]
    public async Task RunAsync_RunEndsWhileTheCallersTokenLivesOn_TheTokenNoLongerReachesTheProvider()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();

        (Task call, WeakReference provider) = RunAndTrackProvider(f.Registry, cts.Token);
        await call.Guard();

        // A long-lived caller token (a host's shutdown token) must not keep every finished call alive.
        (await CollectedAsync(provider)).Should().BeTrue();
        cts.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task RunAsync_SupersededAsTheStartIsPublished_TheCallersTokenNoLongerReachesTheProvider()
    {
        using var cts = new CancellationTokenSource();
        using var host = new HookedRegistry(new RunSupervisorOptions { RunTimeout = Timeout, GracePeriod = TimeSpan.FromSeconds(30) });
        host.OnFirst("RunStarted", () => host.Registry.Start("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }));

        (WeakReference provider, bool cancelled) = await RunToEndAsync(host.Registry, cts.Token);
        cancelled.Should().BeTrue("the run was superseded before its provider ran");
        await host.WaitForLogAsync("AbandonedRunSettled");

        // The run ended before the call registered on the token: the registration must not outlive the call.
        (await CollectedAsync(provider)).Should().BeTrue();
    }

    /// <summary>
    /// Runs a call to its end and keeps nothing of it but a weak reference to its provider: a cancelled call's exception
    /// carries the run's abort token, which would keep the run (and so the provider) reachable.
    /// </summary>
    private static async Task<(WeakReference Provider, bool Cancelled)> RunToEndAsync(ActiveRunRegistry registry, CancellationToken cancellationToken)
    {
        (Task call, WeakReference provider) = RunAndTrackProvider(registry, cancellationToken);
        try
        {
            await call.Guard();
            return (provider, false);
        }
        catch (OperationCanceledException)
        {
            return (provider, true);
        }
    }

    /// <summary>Not inlined, so no local of the test keeps the provider alive.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (Task Call, WeakReference Provider) RunAndTrackProvider(ActiveRunRegistry registry, CancellationToken cancellationToken)
    {
        var payload = new object();
        Func<CancellationToken, Task<int>> provider = _ => Task.FromResult(payload.GetHashCode());
        return (registry.RunAsync("s", provider, cancellationToken: cancellationToken), new WeakReference(provider));
    }

    /// <summary>Whether the object is collected within the hang guard; the pool thread that completed the call may still be returning.</summary>
    private static async Task<bool> CollectedAsync(WeakReference weak)
    {
        using var timeout = new CancellationTokenSource(TestTime.HangGuard);
        while (!timeout.IsCancellationRequested)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            if (!weak.IsAlive)
            {
                return true;
            }

            await Task.Delay(10, CancellationToken.None);
        }

        return false;
    }

    /// <summary>A registry on a fake clock whose logging can run an action on the first record of an event, on the logging thread.</summary>
    private sealed class HookedRegistry : IDisposable, ILoggerProvider, ILogger
    {
        private readonly FakeLoggerProvider _records = new();
        private readonly LoggerFactory _loggerFactory;
        private string? _hookEvent;
        private Action? _hook;

        public HookedRegistry(RunSupervisorOptions options)
        {
            _loggerFactory = new LoggerFactory([_records, this]);
            Registry = new ActiveRunRegistry(options, new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)), _loggerFactory);
        }

        public ActiveRunRegistry Registry { get; }

        public void OnFirst(string eventName, Action hook)
        {
            _hookEvent = eventName;
            _hook = hook;
        }

        public IReadOnlyList<FakeLogRecord> Logs(string eventName) => [.. _records.Collector.GetSnapshot().Where(r => r.Id.Name == eventName)];

        public async Task WaitForLogAsync(string eventName)
        {
            using var timeout = new CancellationTokenSource(TestTime.HangGuard);
            while (Logs(eventName).Count == 0)
            {
                await Task.Delay(1, timeout.Token);
            }
        }

        public void Dispose()
        {
            Registry.Dispose();
            _loggerFactory.Dispose();
        }

        ILogger ILoggerProvider.CreateLogger(string categoryName) => this;

        IDisposable? ILogger.BeginScope<TState>(TState state) => null;

        bool ILogger.IsEnabled(LogLevel logLevel) => true;

        void ILogger.Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name == _hookEvent && Interlocked.Exchange(ref _hook, null) is { } hook)
            {
                hook();
            }
        }
    }
}
