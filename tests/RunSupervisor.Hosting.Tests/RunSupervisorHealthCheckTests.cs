using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using RunSupervisor.HealthChecks;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>The health check through <c>HealthCheckService</c> on a real Generic Host and a <see cref="FakeTimeProvider"/>.</summary>
public sealed class RunSupervisorHealthCheckTests
{
    [Fact]
    public async Task CheckHealth_NoRuns_IsHealthyWithZeroCounts()
    {
        await using TestHost host = await StartAsync();

        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Healthy);
        entry.Data[RunSupervisorHealthCheck.ActiveRunsKey].Should().Be(0);
        entry.Data[RunSupervisorHealthCheck.AbandonedRunsKey].Should().Be(0);
        entry.Data[RunSupervisorHealthCheck.MaxAbandonedRunsKey].Should().Be(1000);
        entry.Data[RunSupervisorHealthCheck.OldestActiveRunAgeKey].Should().Be(0d);
        entry.Data[RunSupervisorHealthCheck.LongestHeartbeatDropStreakKey].Should().Be(0);
    }

    [Fact]
    public async Task CheckHealth_ActiveRuns_IsHealthyAndReportsTheOldestAge()
    {
        await using TestHost host = await StartAsync();
        host.Registry.Start("old");
        host.Time.Advance(TimeSpan.FromSeconds(90));
        host.Registry.Start("new");

        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Healthy);
        entry.Data[RunSupervisorHealthCheck.ActiveRunsKey].Should().Be(2);
        entry.Data[RunSupervisorHealthCheck.OldestActiveRunAgeKey].Should().Be(90d);
    }

    [Fact]
    public async Task CheckHealth_AbandonedRun_IsDegradedWithTheOldestAbandonedAge()
    {
        await using TestHost host = await StartAsync();
        host.Registry.Start("zombie").Attach(new TaskCompletionSource().Task);
        host.Time.Advance(TestHost.Timeout + TestHost.Grace);
        host.Time.Advance(TimeSpan.FromSeconds(12));

        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("1 abandoned run(s)");
        entry.Data[RunSupervisorHealthCheck.AbandonedRunsKey].Should().Be(1);
        entry.Data[RunSupervisorHealthCheck.OldestAbandonedRunAgeKey].Should().Be(12d);
    }

    [Fact]
    public async Task CheckHealth_LedgerReachesMaxAbandonedRuns_IsUnhealthy()
    {
        await using TestHost host = await StartAsync(settings: Settings(maxAbandonedRuns: 2));
        host.Registry.Start("z1").Attach(new TaskCompletionSource().Task);
        host.Registry.Start("z2").Attach(new TaskCompletionSource().Task);
        host.Time.Advance(TestHost.Timeout + TestHost.Grace);

        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("limit of 2");
        entry.Data[RunSupervisorHealthCheck.AbandonedRunsKey].Should().Be(2);
        entry.Data[RunSupervisorHealthCheck.MaxAbandonedRunsKey].Should().Be(2);
    }

    [Fact]
    public async Task CheckHealth_LedgerFullWithFailureStatusDegraded_ReportsTheFailureStatus()
    {
        await using TestHost host = await StartAsync(settings: Settings(maxAbandonedRuns: 1), failureStatus: HealthStatus.Degraded);
        host.Registry.Start("z1").Attach(new TaskCompletionSource().Task);
        host.Time.Advance(TestHost.Timeout + TestHost.Grace);

        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("limit of 1");
    }

    [Fact]
    public async Task CheckHealth_ThresholdsConfigured_AreUsed()
    {
        await using TestHost host = await StartAsync(configure: o =>
        {
            o.DegradedAbandonedRuns = 2;
            o.UnhealthyAbandonedRuns = 3;
        });
        for (int i = 0; i < 3; i++)
        {
            host.Registry.Start("z" + i).Attach(new TaskCompletionSource().Task);

            // In two steps, each instant on time: one jump would make the watchdog late, which is Degraded too.
            host.Time.Advance(TestHost.Timeout);
            host.Time.Advance(TestHost.Grace);
            HealthReportEntry entry = await CheckAsync(host);

            entry.Status.Should().Be(i switch { 0 => HealthStatus.Healthy, 1 => HealthStatus.Degraded, _ => HealthStatus.Unhealthy });
        }
    }

    [Fact]
    public async Task CheckHealth_HeartbeatDropStreakAboveTheThreshold_IsDegraded()
    {
        await using TestHost host = await StartAsync(configure: o => o.MaxHeartbeatDropStreak = 3);
        var policy = host.Host.Services.GetRequiredService<HeartbeatQueuePolicy>();
        host.Registry.Start("busy");
        for (int i = 0; i < 3; i++)
        {
            policy.Resolve(new QueueRequest("busy", IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);
        }

        (await CheckAsync(host)).Status.Should().Be(HealthStatus.Healthy, "a streak of exactly the threshold is tolerated");

        policy.Resolve(new QueueRequest("busy", IsHeartbeat: true));
        HealthReportEntry entry = await CheckAsync(host);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("dropped 4 heartbeats");
        entry.Data[RunSupervisorHealthCheck.SessionsDroppingHeartbeatsKey].Should().Be(1);
        entry.Data[RunSupervisorHealthCheck.LongestHeartbeatDropStreakKey].Should().Be(4);
    }

    [Fact]
    public async Task CheckHealth_SessionBecomesIdle_StreakResetsAndHealthReturns()
    {
        await using TestHost host = await StartAsync(configure: o => o.MaxHeartbeatDropStreak = 0);
        var policy = host.Host.Services.GetRequiredService<HeartbeatQueuePolicy>();
        RunHandle run = host.Registry.Start("busy");
        policy.Resolve(new QueueRequest("busy", IsHeartbeat: true));
        (await CheckAsync(host)).Status.Should().Be(HealthStatus.Degraded);

        run.Dispose();

        (await CheckAsync(host)).Status.Should().Be(HealthStatus.Healthy);
    }

    [Theory]
    [InlineData(0, null, 3, "RunSupervisorHealthCheckOptions.DegradedAbandonedRuns")]
    [InlineData(2, 1, 3, "RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns")]
    [InlineData(1, null, -1, "RunSupervisorHealthCheckOptions.MaxHeartbeatDropStreak")]
    public async Task StartAsync_InvalidThreshold_FailsNamingTheOption(int degraded, int? unhealthy, int streak, string expectedName)
    {
        await using TestHost host = Build(configure: o =>
        {
            o.DegradedAbandonedRuns = degraded;
            o.UnhealthyAbandonedRuns = unhealthy;
            o.MaxHeartbeatDropStreak = streak;
        });

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain(expectedName);
    }

    [Fact]
    public async Task AddRunSupervisorCheck_TwoNames_HaveTheirOwnThresholds()
    {
        await using TestHost host = TestHost.Build(register: static (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddHealthChecks()
                .AddRunSupervisorCheck("strict", o => o.MaxHeartbeatDropStreak = 0)
                .AddRunSupervisorCheck("lenient", o => o.MaxHeartbeatDropStreak = 10);
        });
        await host.Host.StartAsync();
        host.Registry.Start("busy");
        host.Host.Services.GetRequiredService<HeartbeatQueuePolicy>().Resolve(new QueueRequest("busy", IsHeartbeat: true));

        HealthReport report = await host.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        report.Entries["strict"].Status.Should().Be(HealthStatus.Degraded);
        report.Entries["lenient"].Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public void AddRunSupervisorCheck_BadArguments_Throw()
    {
        IHealthChecksBuilder builder = new ServiceCollection().AddHealthChecks();

        FluentActions.Invoking(() => ((IHealthChecksBuilder)null!).AddRunSupervisorCheck()).Should().Throw<ArgumentNullException>().WithParameterName("builder");
        FluentActions.Invoking(() => builder.AddRunSupervisorCheck(" ")).Should().Throw<ArgumentException>().WithParameterName("name");
    }

    private static Dictionary<string, string?> Settings(int maxAbandonedRuns)
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:MaxAbandonedRuns"] = maxAbandonedRuns.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    private static TestHost Build(Dictionary<string, string?>? settings = null, Action<RunSupervisorHealthCheckOptions>? configure = null, HealthStatus? failureStatus = null)
        => TestHost.Build(settings, (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddHealthChecks().AddRunSupervisorCheck(configure: configure, failureStatus: failureStatus);
        });

    private static async Task<TestHost> StartAsync(Dictionary<string, string?>? settings = null, Action<RunSupervisorHealthCheckOptions>? configure = null, HealthStatus? failureStatus = null)
    {
        TestHost host = Build(settings, configure, failureStatus);
        await host.Host.StartAsync();
        return host;
    }

    private static async Task<HealthReportEntry> CheckAsync(TestHost host)
    {
        HealthReport report = await host.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return report.Entries[RunSupervisorHealthChecksBuilderExtensions.DefaultName];
    }
}
