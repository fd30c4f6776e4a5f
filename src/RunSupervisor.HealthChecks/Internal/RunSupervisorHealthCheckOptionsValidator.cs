using System.Globalization;
using Microsoft.Extensions.Options;

namespace RunSupervisor.HealthChecks;

/// <summary>
/// Validates <see cref="RunSupervisorHealthCheckOptions"/>; every message names the option and its allowed range. The
/// abandoned-run thresholds are checked against the registry's own <see cref="ActiveRunRegistry.MaxAbandonedRuns"/>,
/// the most its ledger ever holds: a threshold above it could never be reached.
/// </summary>
internal sealed class RunSupervisorHealthCheckOptionsValidator : IValidateOptions<RunSupervisorHealthCheckOptions>
{
    private readonly ActiveRunRegistry _registry;

    public RunSupervisorHealthCheckOptionsValidator(ActiveRunRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
    }

    public ValidateOptionsResult Validate(string? name, RunSupervisorHealthCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<string> failures = [];
        int max = _registry.MaxAbandonedRuns;
        if (options.DegradedAbandonedRuns < 1)
        {
            failures.Add(Format("RunSupervisorHealthCheckOptions.DegradedAbandonedRuns must be at least 1 (was {0}).", options.DegradedAbandonedRuns));
        }
        else if (options.DegradedAbandonedRuns > max)
        {
            failures.Add(Format("RunSupervisorHealthCheckOptions.DegradedAbandonedRuns ({0}) must be at most RunSupervisorOptions.MaxAbandonedRuns ({1}): the abandoned-run ledger never holds more, so the check could never report Degraded for abandoned runs.", options.DegradedAbandonedRuns, max));
        }

        if (options.UnhealthyAbandonedRuns is int unhealthy)
        {
            if (unhealthy < Math.Max(1, options.DegradedAbandonedRuns))
            {
                failures.Add(Format("RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns must be null or at least DegradedAbandonedRuns ({0}) (was {1}).", options.DegradedAbandonedRuns, unhealthy));
            }
            else if (unhealthy > max)
            {
                failures.Add(Format("RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns ({0}) must be null or at most RunSupervisorOptions.MaxAbandonedRuns ({1}): the abandoned-run ledger forgets runs past it, so the check could never report Unhealthy.", unhealthy, max));
            }
        }

        if (options.MaxHeartbeatDropStreak < 0)
        {
            failures.Add(Format("RunSupervisorHealthCheckOptions.MaxHeartbeatDropStreak must be at least 0 (was {0}).", options.MaxHeartbeatDropStreak));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static string Format(string format, params object[] args) => string.Format(CultureInfo.InvariantCulture, format, args);
}
