using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using RunSupervisor;
using RunSupervisor.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the RunSupervisor health check to an <see cref="IHealthChecksBuilder"/>.</summary>
public static class RunSupervisorHealthChecksBuilderExtensions
{
    /// <summary>The check's default registration name, "runsupervisor".</summary>
    public const string DefaultName = "runsupervisor";

    /// <summary>
    /// Adds a health check on the <see cref="ActiveRunRegistry"/> (and the <see cref="HeartbeatQueuePolicy"/>, if one is
    /// registered): Healthy; Degraded when at least <see cref="RunSupervisorHealthCheckOptions.DegradedAbandonedRuns"/>
    /// runs are abandoned or a session's heartbeat-drop streak exceeds
    /// <see cref="RunSupervisorHealthCheckOptions.MaxHeartbeatDropStreak"/>; <paramref name="failureStatus"/> (Unhealthy by
    /// default) when the abandoned-run ledger reaches <see cref="RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns"/>
    /// (by default <see cref="ActiveRunRegistry.MaxAbandonedRuns"/>, which no threshold may exceed). The result's data
    /// carries the counts and the oldest ages in seconds (active_runs, abandoned_runs, max_abandoned_runs,
    /// oldest_active_run_age_seconds, oldest_abandoned_run_age_seconds, sessions_dropping_heartbeats,
    /// longest_heartbeat_drop_streak, watchdog_lateness_seconds).
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The registration name; also the name of the check's options.</param>
    /// <param name="configure">
    /// Configures the thresholds; validated at host start-up and when the check runs, where invalid options make
    /// this check's entry Unhealthy with the failures as its description, and leave the other checks alone.
    /// </param>
    /// <param name="failureStatus">The status reported when the ledger is full; <see langword="null"/> for Unhealthy.</param>
    /// <param name="tags">Tags to filter checks by (for example "ready").</param>
    /// <param name="timeout">The check's timeout; <see langword="null"/> for none.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> or <paramref name="name"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or white space.</exception>
    /// <remarks>Registers RunSupervisor itself too (idempotently), so that it works with or without a prior <c>AddRunSupervisor</c>.</remarks>
    public static IHealthChecksBuilder AddRunSupervisorCheck(
        this IHealthChecksBuilder builder,
        string name = DefaultName,
        Action<RunSupervisorHealthCheckOptions>? configure = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        IServiceCollection services = builder.Services;
        services.AddRunSupervisor();
        OptionsBuilder<RunSupervisorHealthCheckOptions> options = services.AddOptions<RunSupervisorHealthCheckOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RunSupervisorHealthCheckOptions>, RunSupervisorHealthCheckOptionsValidator>());
        return builder.Add(new HealthCheckRegistration(name, sp => CreateCheck(sp, name), failureStatus, tags, timeout));
    }

    /// <summary>
    /// Resolves and validates the check's options when the check runs. <c>HealthCheckService</c> calls the factory
    /// outside its per-check error handling, so a validation failure thrown here would fail the whole report: it becomes
    /// this check's own Unhealthy entry instead.
    /// </summary>
    private static IHealthCheck CreateCheck(IServiceProvider services, string name)
    {
        try
        {
            return new RunSupervisorHealthCheck(
                services.GetRequiredService<ActiveRunRegistry>(),
                services.GetService<HeartbeatQueuePolicy>(),
                services.GetRequiredService<TimeProvider>(),
                services.GetRequiredService<IOptionsMonitor<RunSupervisorHealthCheckOptions>>().Get(name));
        }
        catch (OptionsValidationException exception)
        {
            return new InvalidOptionsHealthCheck(exception);
        }
    }
}
