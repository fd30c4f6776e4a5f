using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using RunSupervisor.HealthChecks;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>
/// <see cref="RunSupervisorHealthCheckOptions"/>: thresholds checked against the registry's ledger size, and invalid
/// options reported by the check itself when there is no host to fail at start-up.
/// </summary>
public sealed class RunSupervisorHealthCheckOptionsTests
{
    [Theory]
    [InlineData(1, 5, "RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns (5)")]
    [InlineData(3, null, "RunSupervisorHealthCheckOptions.DegradedAbandonedRuns (3)")]
    public async Task StartAsync_AbandonedThresholdAboveMaxAbandonedRuns_FailsNamingBothOptions(int degraded, int? unhealthy, string expected)
    {
        await using TestHost host = Build(maxAbandonedRuns: 2, o =>
        {
            o.DegradedAbandonedRuns = degraded;
            o.UnhealthyAbandonedRuns = unhealthy;
        });

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Failures.Should().ContainSingle()
            .Which.Should().Contain(expected).And.Contain("RunSupervisorOptions.MaxAbandonedRuns (2)");
    }

    [Fact]
    public async Task CheckHealth_ThresholdsEqualToMaxAbandonedRuns_StartAndReachUnhealthy()
    {
        await using TestHost host = Build(maxAbandonedRuns: 2, o =>
        {
            o.DegradedAbandonedRuns = 2;
            o.UnhealthyAbandonedRuns = 2;
        });
        await host.Host.StartAsync();
        EvictZombies(host.Registry, host.Time, 6);

        HealthReportEntry entry = (await host.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];

        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Data[RunSupervisorHealthCheck.AbandonedRunsKey].Should().Be(2);
    }

    [Fact]
    public async Task CheckHealthAsync_ThresholdsAboveTheLedgerThatSkippedValidation_AreCappedSoUnhealthyIsReached()
    {
        // Constructed directly, as nothing but the check's own defence stands between it and these options.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = TestHost.Timeout, GracePeriod = TestHost.Grace, MaxAbandonedRuns = 2 }, time);
        var check = new RunSupervisorHealthCheck(registry, policy: null, time, new RunSupervisorHealthCheckOptions { DegradedAbandonedRuns = 4, UnhealthyAbandonedRuns = 5 });
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("runsupervisor", check, failureStatus: null, tags: null) };
        EvictZombies(registry, time, 6);

        HealthCheckResult result = await check.CheckHealthAsync(context);

        registry.AbandonedCount.Should().Be(2, "the ledger forgets runs past MaxAbandonedRuns");
        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().Contain("limit of 2");
    }

    [Fact]
    public async Task CheckHealthAsync_InvalidOptionsWithoutAHost_ReportsThisCheckUnhealthyAndTheOthersAsUsual()
    {
        using ServiceProvider services = Services(configure: static o => o.DegradedAbandonedRuns = 0);

        HealthReport report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        HealthReportEntry entry = report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];
        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("RunSupervisorHealthCheckOptions.DegradedAbandonedRuns must be at least 1 (was 0)");
        entry.Exception.Should().BeOfType<OptionsValidationException>();
        report.Entries["other"].Status.Should().Be(HealthStatus.Healthy);
        report.Status.Should().Be(HealthStatus.Unhealthy);
    }

    [Fact]
    public async Task CheckHealthAsync_InvalidOptionsWithFailureStatusDegraded_IsStillUnhealthy()
    {
        // The failure status is what a full ledger means; a check that cannot run is not a Degraded ledger.
        using ServiceProvider services = Services(configure: static o => o.MaxHeartbeatDropStreak = -1, failureStatus: HealthStatus.Degraded);

        HealthReport report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        HealthReportEntry entry = report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];
        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("RunSupervisorHealthCheckOptions.MaxHeartbeatDropStreak");
    }

    [Fact]
    public async Task CheckHealthAsync_ThresholdAboveMaxAbandonedRunsWithoutAHost_NamesBothOptions()
    {
        using ServiceProvider services = Services(configure: static o => o.UnhealthyAbandonedRuns = 5, maxAbandonedRuns: 2);

        HealthReport report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName].Description.Should()
            .Contain("RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns (5)").And.Contain("RunSupervisorOptions.MaxAbandonedRuns (2)");
    }

    [Fact]
    public async Task CheckHealthAsync_InvalidRegistryOptionsWithoutAHost_ReportsThemOnThisCheck()
    {
        using ServiceProvider services = Services(configure: null, maxAbandonedRuns: 0);

        HealthReport report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        HealthReportEntry entry = report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];
        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("RunSupervisorOptions.MaxAbandonedRuns must be at least 1 (was 0)");
    }

    private static TestHost Build(int maxAbandonedRuns, Action<RunSupervisorHealthCheckOptions> configure)
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:MaxAbandonedRuns"] = maxAbandonedRuns.ToString(CultureInfo.InvariantCulture);
        return TestHost.Build(settings, (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddHealthChecks().AddRunSupervisorCheck(configure: configure);
        });
    }

    /// <summary>A plain service provider, no host: nothing validates options at start-up.</summary>
    private static ServiceProvider Services(Action<RunSupervisorHealthCheckOptions>? configure, HealthStatus? failureStatus = null, int maxAbandonedRuns = 1000)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<TimeProvider>(new FakeTimeProvider());
        services.AddRunSupervisor(o => o.MaxAbandonedRuns = maxAbandonedRuns);
        services.AddHealthChecks()
            .AddCheck("other", static () => HealthCheckResult.Healthy())
            .AddRunSupervisorCheck(configure: configure, failureStatus: failureStatus);
        return services.BuildServiceProvider();
    }

    private static void EvictZombies(ActiveRunRegistry registry, FakeTimeProvider time, int count)
    {
        for (int i = 0; i < count; i++)
        {
            registry.Start("zombie" + i).Attach(new TaskCompletionSource().Task);
        }

        // In two steps, each instant on time: one jump would make the watchdog late, which is Degraded too.
        time.Advance(TestHost.Timeout);
        time.Advance(TestHost.Grace);
    }
}
