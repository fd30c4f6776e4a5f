using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace RunSupervisor.HealthChecks;

/// <summary>
/// Stands in for the RunSupervisor check when its options (or the registry's) fail validation: reports Unhealthy with
/// the validation failures as its description, so that one misconfigured check is one failing entry of the health
/// report instead of an exception that fails the whole report.
/// </summary>
internal sealed class InvalidOptionsHealthCheck : IHealthCheck
{
    private readonly OptionsValidationException _exception;

    public InvalidOptionsHealthCheck(OptionsValidationException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        _exception = exception;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);

        // Unhealthy whatever the registration's failure status: that status is what a full ledger means, and a check
        // that cannot run says nothing about the ledger.
        return Task.FromResult(HealthCheckResult.Unhealthy("Invalid options: " + string.Join(" ", _exception.Failures), _exception));
    }
}
