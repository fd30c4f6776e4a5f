using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor;
using RunSupervisor.Leasing;
using RunSupervisor.Redis;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="RedisRunLeaseStore"/> as the <see cref="IRunLeaseStore"/> that <c>AddRunSupervisor</c>'s registry uses.</summary>
public static class RunSupervisorRedisServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="RedisRunLeaseStore"/> on the application's registered <see cref="IConnectionMultiplexer"/> and
    /// registers it as <see cref="IRunLeaseStore"/> (replacing an earlier store registration), with the options validated
    /// when the store is first resolved (and when the host starts, under the Generic Host).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the store's options; <see langword="null"/> for the defaults or bound values.</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    /// <remarks>Resolving the store fails with <see cref="InvalidOperationException"/> if no <see cref="IConnectionMultiplexer"/> is registered.</remarks>
    public static IServiceCollection AddRunSupervisorRedis(this IServiceCollection services, Action<RedisRunLeaseStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        AddOptions(services, configure);
        return AddStore(services, static sp => new RedisRunLeaseStore(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisRunLeaseStoreOptions>>().Value,
            sp.GetService<ILoggerFactory>()));
    }

    /// <summary>
    /// Adds <see cref="RedisRunLeaseStore"/> on a connection of its own, opened from <paramref name="configuration"/> (a
    /// StackExchange.Redis configuration string such as <c>"localhost:6379"</c>) and closed with the store, and registers
    /// it as <see cref="IRunLeaseStore"/> (replacing an earlier store registration).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string. <c>abortConnect</c> is forced off, so a Redis that is down at start-up makes lease calls fail (and the registry apply its <see cref="StoreUnavailableBehavior"/>) instead of failing the application's start.</param>
    /// <param name="configure">Configures the store's options; <see langword="null"/> for the defaults or bound values.</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configuration"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is empty or not a valid configuration string.</exception>
    public static IServiceCollection AddRunSupervisorRedis(this IServiceCollection services, string configuration, Action<RedisRunLeaseStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        ConfigurationOptions parsed = Parse(configuration);
        AddOptions(services, configure);
        return AddStore(services, sp => Owned(parsed.Clone(), sp));
    }

    /// <summary>
    /// Adds <see cref="RedisRunLeaseStore"/> with its options bound from the section <c>RunSupervisor:Redis</c>
    /// (<see cref="RedisRunLeaseStoreOptions.SectionName"/>) of <paramref name="configuration"/>, and the registry's lease
    /// options (<see cref="RunSupervisorOptions.Lease"/>) from <c>RunSupervisor:Lease</c>. The store opens a connection of
    /// its own when <c>RunSupervisor:Redis:Configuration</c> is set, and uses the registered
    /// <see cref="IConnectionMultiplexer"/> otherwise.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The application's configuration root (for example <c>builder.Configuration</c>).</param>
    /// <returns>The same service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="configuration"/> is <see langword="null"/>.</exception>
    public static IServiceCollection AddRunSupervisorRedis(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        IConfigurationSection section = configuration.GetSection(RedisRunLeaseStoreOptions.SectionName);
        IConfigurationSection lease = configuration.GetSection(RunSupervisorOptions.SectionName + ":Lease");
        services.AddOptions<RedisRunLeaseStoreOptions>().Bind(section);
        services.AddOptions<RunSupervisorOptions>().Configure(options => lease.Bind(options.Lease));
        AddOptions(services, configure: null);
        return AddStore(services, static sp =>
        {
            RedisRunLeaseStoreOptions options = sp.GetRequiredService<IOptions<RedisRunLeaseStoreOptions>>().Value;
            return string.IsNullOrWhiteSpace(options.Configuration)
                ? new RedisRunLeaseStore(sp.GetRequiredService<IConnectionMultiplexer>(), options, sp.GetService<ILoggerFactory>())
                : Owned(Parse(options.Configuration), sp);
        });
    }

    private static ConfigurationOptions Parse(string configuration)
    {
        ConfigurationOptions parsed;
        try
        {
            parsed = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException("The Redis configuration string is not valid: " + e.Message, nameof(configuration), e);
        }

        parsed.AbortOnConnectFail = false;
        return parsed;
    }

    private static RedisRunLeaseStore Owned(ConfigurationOptions configuration, IServiceProvider services)
    {
        RedisRunLeaseStoreOptions options = services.GetRequiredService<IOptions<RedisRunLeaseStoreOptions>>().Value;
        RedisRunLeaseStoreOptionsValidator.ThrowIfInvalid(options);
        ILoggerFactory? loggerFactory = services.GetService<ILoggerFactory>();
        configuration.LoggerFactory ??= loggerFactory;
        ConnectionMultiplexer multiplexer = ConnectionMultiplexer.Connect(configuration);
        return new RedisRunLeaseStore(multiplexer, options, loggerFactory, ownsMultiplexer: true);
    }

    private static void AddOptions(IServiceCollection services, Action<RedisRunLeaseStoreOptions>? configure)
    {
        OptionsBuilder<RedisRunLeaseStoreOptions> builder = services.AddOptions<RedisRunLeaseStoreOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisRunLeaseStoreOptions>, RedisRunLeaseStoreOptionsValidator>());
    }

    private static IServiceCollection AddStore(IServiceCollection services, Func<IServiceProvider, RedisRunLeaseStore> factory)
    {
        services.Replace(ServiceDescriptor.Singleton(factory));
        services.Replace(ServiceDescriptor.Singleton<IRunLeaseStore>(static sp => sp.GetRequiredService<RedisRunLeaseStore>()));
        return services;
    }
}
