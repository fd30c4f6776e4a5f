using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RunSupervisor.Hosting.Tests.TestSupport;

namespace RunSupervisor.Hosting.Tests;

/// <summary>Configuration binding and start-up validation through a real Generic Host.</summary>
public sealed class RunSupervisorHostingServiceCollectionExtensionsTests
{
    [Fact]
    public async Task AddRunSupervisor_RootConfiguration_BindsTheRunSupervisorSection()
    {
        var settings = new Dictionary<string, string?>
        {
            ["RunSupervisor:RunTimeout"] = "00:02:00",
            ["RunSupervisor:GracePeriod"] = "00:00:05",
            ["RunSupervisor:MaxRunDuration"] = "00:20:00",
            ["RunSupervisor:MaxAbandonedRuns"] = "7",
        };
        await using TestHost host = await TestHost.StartAsync(settings);

        RunSupervisorOptions options = host.Host.Services.GetRequiredService<IOptions<RunSupervisorOptions>>().Value;

        options.RunTimeout.Should().Be(TimeSpan.FromMinutes(2));
        options.GracePeriod.Should().Be(TimeSpan.FromSeconds(5));
        options.MaxRunDuration.Should().Be(TimeSpan.FromMinutes(20));
        options.MaxAbandonedRuns.Should().Be(7);
        host.Registry.Start("s1").Deadline.Should().Be(host.Time.GetUtcNow() + TimeSpan.FromMinutes(2));
    }

    [Fact]
    public async Task AddRunSupervisor_Section_BindsThatSection()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Agents:Supervision:RunTimeout"] = "00:03:00",
            ["RunSupervisor:RunTimeout"] = "00:09:00",
        };
        await using TestHost host = TestHost.Build(settings, static (services, configuration) => services.AddRunSupervisor(configuration.GetSection("Agents:Supervision")));
        await host.Host.StartAsync();

        host.Host.Services.GetRequiredService<IOptions<RunSupervisorOptions>>().Value.RunTimeout.Should().Be(TimeSpan.FromMinutes(3));
    }

    [Fact]
    public async Task AddRunSupervisor_EmptySection_UsesTheDefaults()
    {
        await using TestHost host = await TestHost.StartAsync(new Dictionary<string, string?>());

        RunSupervisorOptions options = host.Host.Services.GetRequiredService<IOptions<RunSupervisorOptions>>().Value;

        options.RunTimeout.Should().Be(new RunSupervisorOptions().RunTimeout);
        options.GracePeriod.Should().Be(new RunSupervisorOptions().GracePeriod);
    }

    [Theory]
    [InlineData("RunTimeout", "00:00:00", "RunSupervisorOptions.RunTimeout")]
    [InlineData("GracePeriod", "-00:00:01", "RunSupervisorOptions.GracePeriod")]
    [InlineData("MaxRunDuration", "00:00:01", "RunSupervisorOptions.MaxRunDuration")]
    [InlineData("MaxAbandonedRuns", "0", "RunSupervisorOptions.MaxAbandonedRuns")]
    public async Task StartAsync_InvalidOption_FailsNamingTheOption(string key, string value, string expectedName)
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:" + key] = value;
        await using TestHost host = TestHost.Build(settings);

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>())
            .Which.Message.Should().Contain(expectedName);
    }

    [Fact]
    public async Task StartAsync_UnparsableValue_FailsNamingTheKey()
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:RunTimeout"] = "ten minutes";
        await using TestHost host = TestHost.Build(settings);

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<InvalidOperationException>())
            .Which.Message.Should().Contain("RunSupervisor:RunTimeout");
    }

    [Theory]
    [InlineData("RunTimeout")]
    [InlineData("GracePeriod")]
    [InlineData("MaxAbandonedRuns")]
    [InlineData("QueueOverflow")]
    [InlineData("IdleTimeout")]
    [InlineData("Lanes:cron")]
    [InlineData("Lease:LeaseTtl")]
    public async Task StartAsync_EmptyValue_FailsNamingTheKeyInsteadOfUsingTheDefault(string key)
    {
        // The binder skips an empty value, which would otherwise leave the default in place without a word.
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:" + key] = string.Empty;
        await using TestHost host = TestHost.Build(settings);

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>())
            .Which.Failures.Should().ContainSingle().Which.Should().StartWith($"RunSupervisor:{key} is empty");
    }

    [Fact]
    public async Task StartAsync_EmptyValueInACustomSection_NamesTheFullKey()
    {
        var settings = new Dictionary<string, string?> { ["Agents:Supervision:GracePeriod"] = string.Empty };
        await using TestHost host = TestHost.Build(settings, static (services, configuration) => services.AddRunSupervisor(configuration.GetSection("Agents:Supervision")));

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("Agents:Supervision:GracePeriod is empty");
    }

    [Fact]
    public void Registry_JsonEmptyStringWithoutAHost_FailsNamingTheKeyButAcceptsNullAndAnEmptyObject()
    {
        // JSON null and an empty object reach configuration as no value at all, which is what null means for
        // IdleTimeout (off) and Lanes (none); only the empty string is a value that was meant and is missing.
        using var json = new MemoryStream("""{ "RunSupervisor": { "RunTimeout": "", "IdleTimeout": null, "Lanes": {} } }"""u8.ToArray());
        IConfiguration configuration = new ConfigurationBuilder().AddJsonStream(json).Build();
        using ServiceProvider services = new ServiceCollection().AddRunSupervisor(configuration).BuildServiceProvider();

        Action resolve = () => services.GetRequiredService<ActiveRunRegistry>();

        resolve.Should().Throw<OptionsValidationException>().Which.Failures.Should().ContainSingle()
            .Which.Should().Be("RunSupervisor:RunTimeout is empty: remove the key to use the default, or give it a value.");
    }

    [Fact]
    public async Task AddRunSupervisor_CalledTwiceWithAnEmptyValue_ReportsItOnce()
    {
        Dictionary<string, string?> settings = TestHost.DefaultSettings();
        settings["RunSupervisor:RunTimeout"] = string.Empty;
        await using TestHost host = TestHost.Build(settings, static (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddRunSupervisor(configuration.GetSection(RunSupervisorOptions.SectionName));
        });

        Func<Task> start = () => host.Host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Failures.Should().ContainSingle();
    }

    [Fact]
    public async Task AddRunSupervisor_CalledTwice_RegistersOneHostedServiceAndOneRegistry()
    {
        await using TestHost host = TestHost.Build(register: static (services, configuration) =>
        {
            services.AddRunSupervisor(configuration);
            services.AddRunSupervisor(configuration.GetSection(RunSupervisorOptions.SectionName));
        });

        host.Host.Services.GetServices<IHostedService>().OfType<RunSupervisorShutdownDrain>().Should().ContainSingle();
        host.Host.Services.GetServices<ActiveRunRegistry>().Should().ContainSingle();
    }

    [Fact]
    public async Task AddRunSupervisor_RegisteredTimeProvider_IsUsedByTheRegistry()
    {
        await using TestHost host = await TestHost.StartAsync();

        host.Registry.Start("s1").StartedAt.Should().Be(host.Time.GetUtcNow());
    }

    [Fact]
    public void AddRunSupervisor_NullArguments_Throw()
    {
        var services = new ServiceCollection();
        IConfiguration configuration = new ConfigurationBuilder().Build();

        FluentActions.Invoking(() => services.AddRunSupervisor((IConfiguration)null!)).Should().Throw<ArgumentNullException>().WithParameterName("configuration");
        FluentActions.Invoking(() => services.AddRunSupervisor((IConfigurationSection)null!)).Should().Throw<ArgumentNullException>().WithParameterName("section");
        FluentActions.Invoking(() => ((IServiceCollection)null!).AddRunSupervisor(configuration)).Should().Throw<ArgumentNullException>().WithParameterName("services");
    }
}
