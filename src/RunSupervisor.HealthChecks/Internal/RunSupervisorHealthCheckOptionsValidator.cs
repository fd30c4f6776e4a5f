using System.Globalization;
using Microsoft.Extensions.Options;

namespace RunSupervisor.HealthChecks;

/// <summary>Validates <see cref="RunSupervisorHealthCheckOptions"/>; every message names the option and its allowed range.</summary>
internal sealed class RunSupervisorHealthCheckOptionsValidator : IValidateOptions<RunSupervisorHealthCheckOptions>
{
    public ValidateOptionsResult Validate(string? name, RunSupervisorHealthCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<string> failures = [];
        if (options.DegradedAbandonedRuns < 1)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RunSupervisorHealthCheckOptions.DegradedAbandonedRuns must be at least 1 (was {0}).", options.DegradedAbandonedRuns));
        }

        if (options.UnhealthyAbandonedRuns is int unhealthy && unhealthy < Math.Max(1, options.DegradedAbandonedRuns))
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RunSupervisorHealthCheckOptions.UnhealthyAbandonedRuns must be null or at least DegradedAbandonedRuns ({0}) (was {1}).", options.DegradedAbandonedRuns, unhealthy));
        }

        if (options.MaxHeartbeatDropStreak < 0)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RunSupervisorHealthCheckOptions.MaxHeartbeatDropStreak must be at least 0 (was {0}).", options.MaxHeartbeatDropStreak));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
