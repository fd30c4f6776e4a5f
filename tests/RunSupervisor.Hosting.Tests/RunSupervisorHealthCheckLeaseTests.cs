using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RunSupervisor.HealthChecks;
using RunSupervisor.Hosting.Tests.TestSupport;
using RunSupervisor.Leasing;

namespace RunSupervisor.Hosting.Tests;

/// <summary>The health check's view of the lease store and of the admission queues.</summary>
public sealed class RunSupervisorHealthCheckLeaseTests
{
    [Fact]
    public async Task CheckHealth_LeaseStoreUnreachable_IsDegradedUntilACallSucceeds()
    {
        await using TestHost host = await StartAsync(withStore: true);
        var store = (InMemoryRunLeaseStore)host.Host.Services.GetRequiredService<IRunLeaseStore>();
        using RunHandle run = await host.Registry.StartAsync("s");
        store.BeginOutage();

        host.Time.Advance(TimeSpan.FromSeconds(5));
        HealthReportEntry during = await CheckAsync(host);
        store.EndOutage();
        host.Time.Advance(TimeSpan.FromSeconds(5));
        HealthReportEntry after = await CheckAsync(host);

        during.Status.Should().Be(HealthStatus.Degraded);
        during.Description.Should().Contain("lease store is unreachable");
        during.Data[RunSupervisorHealthCheck.LeaseStoreAvailableKey].Should().Be(false);
        after.Status.Should().Be(HealthStatus.Healthy);
        after.Data[RunSupervisorHealthCheck.LeaseStoreAvailableKey].Should().Be(true);
    }

    [Fact]
    public async Task CheckHealth_LeaseLost_CountedInTheData()
    {
        await using TestHost host = await StartAsync(withStore: true);
        var store = (InMemoryRunLeaseStore)host.Host.Services.GetRequiredService<IRunLeaseStore>();
        RunHandle run = await host.Registry.StartAsync("s");
        store.RemoveLease("s");

        host.Time.Advance(TimeSpan.FromSeconds(5));
        HealthReportEntry entry = await CheckAsync(host);

        (await run.Completion).Should().Be(RunEndReason.LeaseLost);
        entry.Data[RunSupervisorHealthCheck.LeasesLostKey].Should().Be(1L);
        entry.Data[RunSupervisorHealthCheck.UnfencedStartsKey].Should().Be(0L);
    }

    [Fact]
    public async Task CheckHealth_NoStore_HasNoLeaseData()
    {
        await using TestHost host = await StartAsync(withStore: false);

        HealthReportEntry entry = await CheckAsync(host);

        entry.Data.Should().NotContainKey(RunSupervisorHealthCheck.LeaseStoreAvailableKey);
        entry.Data.Should().NotContainKey(RunSupervisorHealthCheck.LeasesLostKey);
    }

    [Fact]
    public async Task CheckHealth_StartsWaiting_QueueLengthAndOldestWaitInTheData()
    {
        await using TestHost host = await StartAsync(withStore: false);
        using RunHandle busy = host.Registry.Start("s");
        Task<RunHandle> waiting = host.Registry.StartAsync("s", new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromMinutes(5) }).AsTask();

        host.Time.Advance(TimeSpan.FromSeconds(4));
        HealthReportEntry entry = await CheckAsync(host);

        entry.Data[RunSupervisorHealthCheck.QueuedStartsKey].Should().Be(1);
        entry.Data[RunSupervisorHealthCheck.OldestQueuedWaitKey].Should().Be(4d);
        entry.Data["queued_starts.default"].Should().Be(1);
        entry.Data["oldest_queued_wait_seconds.default"].Should().Be(4d);
        busy.Dispose();
        (await waiting.WaitAsync(TestHost.HangGuard)).Dispose();
    }

    private static async Task<TestHost> StartAsync(bool withStore)
    {
        TestHost host = TestHost.Build(register: (services, configuration) =>
        {
            if (withStore)
            {
                services.AddSingleton<IRunLeaseStore>(sp => new InMemoryRunLeaseStore(sp.GetRequiredService<TimeProvider>()));
            }

            services.AddRunSupervisor(configuration);
            services.AddHealthChecks().AddRunSupervisorCheck();
        });
        await host.Host.StartAsync();
        return host;
    }

    private static async Task<HealthReportEntry> CheckAsync(TestHost host)
    {
        HealthReport report = await host.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];
    }
}
