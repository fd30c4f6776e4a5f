using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RunSupervisor.HealthChecks;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>The health check reports a late watchdog (a starved thread pool or a paused process) as Degraded while it is late.</summary>
public sealed class RunSupervisorHealthCheckWatchdogTests
{
    [Fact]
    public async Task CheckHealth_WatchdogRanLate_IsDegradedUntilItsNextTickIsOnTime()
    {
        await using TestHost host = await StartAsync();
        host.Registry.Start("late");
        host.Registry.Start("on-time", new RunStartOptions { Timeout = TestHost.Timeout + TimeSpan.FromSeconds(10) });

        // One jump 3 s past the first deadline, as a process resumed from a pause would see it.
        host.Time.Advance(TestHost.Timeout + TimeSpan.FromSeconds(3));
        HealthReportEntry late = await CheckAsync(host);
        host.Time.Advance(TimeSpan.FromSeconds(7));
        HealthReportEntry recovered = await CheckAsync(host);

        late.Status.Should().Be(HealthStatus.Degraded);
        late.Description.Should().Contain("watchdog ran 3 s late");
        late.Data[RunSupervisorHealthCheck.WatchdogLatenessKey].Should().Be(3d);
        recovered.Status.Should().Be(HealthStatus.Healthy);
        recovered.Data[RunSupervisorHealthCheck.WatchdogLatenessKey].Should().Be(0d);
    }

    [Fact]
    public async Task CheckHealth_WatchdogLateWithinTheThreshold_IsHealthy()
    {
        await using TestHost host = await StartAsync();
        host.Registry.Start("s");

        host.Time.Advance(TestHost.Timeout + TimeSpan.FromMilliseconds(500));

        (await CheckAsync(host)).Status.Should().Be(HealthStatus.Healthy);
    }

    private static async Task<TestHost> StartAsync()
    {
        TestHost host = TestHost.Build(register: (services, configuration) =>
        {
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
