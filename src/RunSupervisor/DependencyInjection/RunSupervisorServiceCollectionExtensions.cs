using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RunSupervisor;
using RunSupervisor.Leasing;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers RunSupervisor with an <see cref="IServiceCollection"/>.</summary>
public static class RunSupervisorServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="ActiveRunRegistry"/> and <see cref="HeartbeatQueuePolicy"/> as singletons, the options
    /// with validation, and <see cref="TimeProvider.System"/> unless a <see cref="TimeProvider"/> is already
    /// registered. A registered <see cref="IRunLeaseStore"/> makes runs exclusive across hosts. Calling it more than
    /// once registers nothing twice.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    public static IServiceCollection AddRunSupervisor(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<RunSupervisorOptions>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RunSupervisorOptions>, RunSupervisorOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(static sp => new ActiveRunRegistry(
            sp.GetRequiredService<IOptions<RunSupervisorOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<ActiveRunRegistry>>() ?? NullLogger<ActiveRunRegistry>.Instance,
            sp.GetService<IRunLeaseStore>()));
        services.TryAddSingleton(static sp => new HeartbeatQueuePolicy(
            sp.GetRequiredService<ActiveRunRegistry>(),
            sp.GetService<ILogger<HeartbeatQueuePolicy>>()));
        return services;
    }

    /// <summary>
    /// Adds RunSupervisor as <see cref="AddRunSupervisor(IServiceCollection)"/> does, and configures its options.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options; validated when the registry is first resolved.</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configure"/> is <see langword="null"/>.</exception>
    public static IServiceCollection AddRunSupervisor(this IServiceCollection services, Action<RunSupervisorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        return services.AddRunSupervisor();
    }
}
