using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RunSupervisor;
using RunSupervisor.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers RunSupervisor for a Generic Host (or ASP.NET Core) application: options bound from configuration and
/// validated at start-up, and a hosted service that drains the registry when the host stops.
/// </summary>
public static class RunSupervisorHostingServiceCollectionExtensions
{
    /// <summary>
    /// Adds RunSupervisor (as <see cref="RunSupervisorServiceCollectionExtensions.AddRunSupervisor(IServiceCollection)"/>
    /// does), binds <see cref="RunSupervisorOptions"/> from the section <see cref="RunSupervisorOptions.SectionName"/>
    /// ("RunSupervisor") of <paramref name="configuration"/>, validates the options when the host starts, and drains the
    /// registry when the host stops.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The application's configuration root (for example <c>builder.Configuration</c>).</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configuration"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The overload is chosen by the argument's compile-time type: pass an <see cref="IConfigurationSection"/> to bind
    /// that very section instead. Calling either overload more than once registers the hosted service once.
    /// </remarks>
    public static IServiceCollection AddRunSupervisor(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddRunSupervisor(configuration.GetSection(RunSupervisorOptions.SectionName));
    }

    /// <summary>
    /// Adds RunSupervisor (as <see cref="RunSupervisorServiceCollectionExtensions.AddRunSupervisor(IServiceCollection)"/>
    /// does), binds <see cref="RunSupervisorOptions"/> from <paramref name="section"/>, validates the options when the host
    /// starts (an invalid value fails <c>StartAsync</c> with a message that names the option and its allowed range; an
    /// empty value, such as <c>"RunTimeout": ""</c>, fails naming its key instead of silently meaning the default), and
    /// drains the registry when the host stops: every run is aborted, the drain waits up to
    /// <see cref="RunSupervisorOptions.GracePeriod"/> plus one second, cut to what is left of
    /// <c>HostOptions.ShutdownTimeout</c> minus one second, runs that do not settle are force-evicted, and the drain logs
    /// one line per run it did not drain and one summary line.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="section">The configuration section that holds the options, for example <c>configuration.GetSection("RunSupervisor")</c>.</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="section"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// Values are TimeSpan strings such as <c>"00:10:00"</c>. Set <c>HostOptions.ShutdownTimeout</c> above the grace
    /// period plus one second so that the drain can wait for it; a start-up warning (EventId 101,
    /// <c>ShutdownTimeoutTooShort</c>) says when it is not, which is the case with both defaults (30 seconds each).
    /// Calling this method more than once registers the hosted service once.
    /// </remarks>
    public static IServiceCollection AddRunSupervisor(this IServiceCollection services, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.AddRunSupervisor();
        services.AddOptions<RunSupervisorOptions>()
            .Bind(section)
            .ValidateOnStart();
        // One check per bound section, so binding the same section twice reports an empty key once.
        if (!services.Any(d => d.ServiceType == typeof(IValidateOptions<RunSupervisorOptions>)
            && d.ImplementationInstance is EmptyConfigurationValueValidator validator && validator.Path == section.Path))
        {
            services.AddSingleton<IValidateOptions<RunSupervisorOptions>>(new EmptyConfigurationValueValidator(section));
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RunSupervisorShutdownDrain>());
        return services;
    }
}
