using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>
/// How long the shutdown drain waits within the host's shutdown window, and the start-up warning when that window is
/// too short for the grace period; on a real Generic Host and a <see cref="FakeTimeProvider"/>.
/// </summary>
public sealed class RunSupervisorShutdownBudgetTests
{
    private const string TooShort = "ShutdownTimeoutTooShort";
    private const string Summary = "ShutdownDrainSummary";
    private const string NotDrained = "ShutdownRunNotDrained";

    [Fact]
    public async Task StartAsync_DefaultShutdownTimeoutAndGracePeriod_WarnsNamingBothAndWhatToChange()
    {
        // Both defaults are 30 s: the eviction at abort + grace would race the host's shutdown timer.
        await using TestHost host = await TestHost.StartAsync(new Dictionary<string, string?>());

        FakeLogRecord warning = host.LogsWithEvent(TooShort).Should().ContainSingle().Subject;
        warning.Id.Id.Should().Be(101);
        warning.Level.Should().Be(LogLevel.Warning);
        warning.GetStructuredStateValue("ShutdownTimeout").Should().Be("00:00:30");
        warning.GetStructuredStateValue("GracePeriod").Should().Be("00:00:30");
        warning.GetStructuredStateValue("Required").Should().Be("00:00:31");
        warning.GetStructuredStateValue("Budget").Should().Be("00:00:29");
        warning.Message.Should().Contain("HostOptions.ShutdownTimeout").And.Contain("RunSupervisorOptions.GracePeriod").And.Contain("shutdownTimeoutSeconds");
    }

    [Theory]
    [InlineData(30, 30, true)]
    [InlineData(31, 30, true)]
    [InlineData(32, 30, false)]
    [InlineData(5, 0, false)]
    [InlineData(1, 0, true)]
    public async Task StartAsync_ShutdownTimeoutAgainstGracePlusOneSecond_WarnsOnlyWhenNotLonger(int shutdownSeconds, int graceSeconds, bool warns)
    {
        await using TestHost host = await TestHost.StartAsync(Settings(shutdownSeconds, TimeSpan.FromSeconds(graceSeconds)));

        host.LogsWithEvent(TooShort).Should().HaveCount(warns ? 1 : 0);
    }

    [Fact]
    public async Task StartAsync_InfiniteShutdownTimeout_DoesNotWarn()
    {
        await using TestHost host = TestHost.Build(register: static (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.Configure<HostOptions>(static o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        });
        await host.Host.StartAsync();

        host.LogsWithEvent(TooShort).Should().BeEmpty();
        Drain(host).FullBudget.Should().Be(TestHost.Grace + RunSupervisorShutdownDrain.EvictionSlack);
    }

    [Fact]
    public async Task StopAsync_DefaultShutdownTimeout_StopsWaitingOneSecondBeforeTheHostGivesUp()
    {
        // 30 s window, 30 s grace: the drain waits 29 s, reports the ignored abort as still running, and is not cancelled.
        await using TestHost host = await TestHost.StartAsync(Settings(shutdownSeconds: 30, TestHost.Grace));
        RunHandle zombie = host.Registry.Start("zombie");
        zombie.Attach(new TaskCompletionSource().Task);
        Task aborted = WhenCancelled(zombie.AbortToken);

        Task stop = host.Host.StopAsync();
        await aborted.WaitAsync(TestHost.HangGuard);
        host.Time.Advance(TimeSpan.FromSeconds(29) - TimeSpan.FromTicks(1));
        stop.IsCompleted.Should().BeFalse();
        host.Time.Advance(TimeSpan.FromTicks(1));
        await stop.WaitAsync(TestHost.HangGuard);

        zombie.Status.Should().Be(RunStatus.Aborting, "the grace period has not elapsed when the drain stops waiting");
        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.Level.Should().Be(LogLevel.Warning);
        summary.GetStructuredStateValue("Budget").Should().Be("00:00:29");
        summary.GetStructuredStateValue("StillRunning").Should().Be("1");
        summary.GetStructuredStateValue("Cancelled").Should().Be(bool.FalseString);
        host.LogsWithEvent(NotDrained).Should().ContainSingle()
            .Which.GetStructuredStateValue("SessionId").Should().Be("zombie");
    }

    [Fact]
    public async Task StopAsync_AnotherServiceSpendsPartOfTheWindow_WaitsOnlyForWhatIsLeft()
    {
        // 60 s window; a service stopped before the drain (registered after RunSupervisor) takes 40 s: 60 - 40 - 1 = 19 s.
        SlowStoppingService? slow = null;
        var settings = Settings(shutdownSeconds: 60, TestHost.Grace);
        await using TestHost host = TestHost.Build(settings, (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddHostedService(sp => slow = new SlowStoppingService(sp.GetRequiredService<TimeProvider>(), TimeSpan.FromSeconds(40)));
        });
        await host.Host.StartAsync();
        RunHandle zombie = host.Registry.Start("zombie");
        zombie.Attach(new TaskCompletionSource().Task);
        Task aborted = WhenCancelled(zombie.AbortToken);

        Task stop = host.Host.StopAsync();
        await slow!.Stopping.WaitAsync(TestHost.HangGuard);
        zombie.Status.Should().Be(RunStatus.Running, "the drain runs after the services stopped before it");
        host.Time.Advance(TimeSpan.FromSeconds(40));
        await aborted.WaitAsync(TestHost.HangGuard);
        host.Time.Advance(TimeSpan.FromSeconds(19) - TimeSpan.FromTicks(1));
        stop.IsCompleted.Should().BeFalse();
        host.Time.Advance(TimeSpan.FromTicks(1));
        await stop.WaitAsync(TestHost.HangGuard);

        FakeLogRecord summary = host.LogsWithEvent(Summary).Should().ContainSingle().Subject;
        summary.GetStructuredStateValue("Budget").Should().Be("00:00:19");
        summary.GetStructuredStateValue("StillRunning").Should().Be("1");
        host.LogsWithEvent(TooShort).Should().BeEmpty("60 s is longer than 30 s + 1 s");
    }

    [Fact]
    public async Task StopAsync_WithoutStoppingAsync_GivesTheWholeWindowToTheDrain()
    {
        // A host that does not know IHostedLifecycleService calls StopAsync only: the clock starts there.
        await using TestHost host = await TestHost.StartAsync(Settings(shutdownSeconds: 20, TestHost.Grace));
        host.Time.Advance(TimeSpan.FromMinutes(5));

        await Drain(host).StopAsync(CancellationToken.None).WaitAsync(TestHost.HangGuard);

        host.LogsWithEvent(Summary).Should().ContainSingle().Which.GetStructuredStateValue("Budget").Should().Be("00:00:19");
    }

    [Fact]
    public async Task StopAsync_RealClockShutdownTimeoutShorterThanTheGrace_ReportsBeforeTheHostGivesUp()
    {
        // Real time on both sides, as the host's own shutdown timer always is: 3 s window, 5 s grace, a 2 s wait.
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            [TestHost.ShutdownTimeoutKey] = "3",
            ["RunSupervisor:GracePeriod"] = "00:00:05",
        });
        builder.Services.AddFakeLogging();
        builder.Services.AddRunSupervisor(builder.Configuration);
        using IHost host = builder.Build();
        await host.StartAsync();
        RunHandle zombie = host.Services.GetRequiredService<ActiveRunRegistry>().Start("zombie");
        zombie.Attach(new TaskCompletionSource().Task);

        await host.StopAsync().WaitAsync(TestHost.HangGuard);

        FakeLogRecord summary = host.Services.GetFakeLogCollector().GetSnapshot().Single(r => r.Id.Name == Summary);
        summary.GetStructuredStateValue("Cancelled").Should().Be(bool.FalseString, "the drain stops a second before the host's token fires");
        TimeSpan.Parse(summary.GetStructuredStateValue("Budget")!, CultureInfo.InvariantCulture).Should().BeGreaterThan(TimeSpan.FromSeconds(1)).And.BeLessOrEqualTo(TimeSpan.FromSeconds(2));
        summary.GetStructuredStateValue("StillRunning").Should().Be("1");
    }

    [Theory]
    [InlineData(120, 30, 0, 31)]
    [InlineData(120, 30, 100, 19)]
    [InlineData(30, 30, 0, 29)]
    [InlineData(30, 30, 29, 0)]
    [InlineData(30, 30, 45, 0)]
    [InlineData(10, 0, 0, 1)]
    public void Budget_ElapsedPartOfTheWindow_IsGracePlusSlackCutToWhatIsLeftMinusTheMargin(int shutdownSeconds, int graceSeconds, int elapsedSeconds, int expectedSeconds)
    {
        RunSupervisorShutdownDrain drain = Create(TimeSpan.FromSeconds(shutdownSeconds), TimeSpan.FromSeconds(graceSeconds));

        drain.Budget(TimeSpan.FromSeconds(elapsedSeconds)).Should().Be(TimeSpan.FromSeconds(expectedSeconds));
    }

    [Fact]
    public void Budget_InfiniteShutdownTimeout_IsGracePlusSlackWhateverHasElapsed()
    {
        RunSupervisorShutdownDrain drain = Create(Timeout.InfiniteTimeSpan, TimeSpan.FromSeconds(30));

        drain.Budget(TimeSpan.FromDays(3)).Should().Be(TimeSpan.FromSeconds(31));
    }

    private static Dictionary<string, string?> Settings(int shutdownSeconds, TimeSpan grace)
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings[TestHost.ShutdownTimeoutKey] = shutdownSeconds.ToString(CultureInfo.InvariantCulture);
        settings["RunSupervisor:GracePeriod"] = grace.ToString();
        return settings;
    }

    private static RunSupervisorShutdownDrain Drain(TestHost host)
        => host.Host.Services.GetServices<IHostedService>().OfType<RunSupervisorShutdownDrain>().Single();

    private static RunSupervisorShutdownDrain Create(TimeSpan shutdownTimeout, TimeSpan grace)
    {
        var time = new FakeTimeProvider();
        var registry = new ActiveRunRegistry(new RunSupervisorOptions { GracePeriod = grace }, time);
        return new RunSupervisorShutdownDrain(
            registry,
            Options.Create(new RunSupervisorOptions { GracePeriod = grace }),
            Options.Create(new HostOptions { ShutdownTimeout = shutdownTimeout }),
            time,
            NullLogger<RunSupervisorShutdownDrain>.Instance);
    }

    private static Task WhenCancelled(CancellationToken token)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => tcs.TrySetResult());
        return tcs.Task;
    }

    /// <summary>A hosted service whose StopAsync takes a while of fake time, as a service finishing its own work would.</summary>
    private sealed class SlowStoppingService(TimeProvider time, TimeSpan stopDuration) : IHostedService
    {
        private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes once the stop delay's timer is armed, so advancing fake time reaches it.</summary>
        public Task Stopping => _stopping.Task;

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            Task delay = Task.Delay(stopDuration, time, cancellationToken);
            _stopping.TrySetResult();
            await delay;
        }
    }
}
