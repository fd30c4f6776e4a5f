using System.Globalization;
using Microsoft.Extensions.Options;
using RunSupervisor.Leasing;

namespace RunSupervisor;

/// <summary>
/// Validates <see cref="RunSupervisorOptions"/>; used by dependency injection and by the registry's constructors.
/// </summary>
internal sealed class RunSupervisorOptionsValidator : IValidateOptions<RunSupervisorOptions>
{
    public static RunSupervisorOptionsValidator Instance { get; } = new();

    public ValidateOptionsResult Validate(string? name, RunSupervisorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<string>? failures = null;

        if (options.RunTimeout <= TimeSpan.Zero || options.RunTimeout > RunSupervisorOptions.RunTimeoutLimit)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.RunTimeout must be greater than 00:00:00 and at most {0} (was {1}).", RunSupervisorOptions.RunTimeoutLimit, options.RunTimeout));
        }

        if (options.GracePeriod < TimeSpan.Zero || options.GracePeriod > RunSupervisorOptions.GracePeriodLimit)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.GracePeriod must be between 00:00:00 and {0} (was {1}).", RunSupervisorOptions.GracePeriodLimit, options.GracePeriod));
        }

        if (options.MaxRunDuration < options.RunTimeout || options.MaxRunDuration > RunSupervisorOptions.MaxRunDurationLimit)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.MaxRunDuration must be at least RunTimeout ({0}) and at most {1} (was {2}).", options.RunTimeout, RunSupervisorOptions.MaxRunDurationLimit, options.MaxRunDuration));
        }

        if (options.MaxAbandonedRuns < 1)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.MaxAbandonedRuns must be at least 1 (was {0}).", options.MaxAbandonedRuns));
        }

        if (options.WatchdogLatenessThreshold <= TimeSpan.Zero || options.WatchdogLatenessThreshold > RunSupervisorOptions.GracePeriodLimit)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.WatchdogLatenessThreshold must be greater than 00:00:00 and at most {0} (was {1}).", RunSupervisorOptions.GracePeriodLimit, options.WatchdogLatenessThreshold));
        }

        if (options.QueueTimeout < TimeSpan.Zero || options.QueueTimeout > RunSupervisorOptions.RunTimeoutLimit)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.QueueTimeout must be between 00:00:00 and {0} (was {1}).", RunSupervisorOptions.RunTimeoutLimit, options.QueueTimeout));
        }

        if (options.MaxQueuedPerSession < 1)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.MaxQueuedPerSession must be at least 1 (was {0}).", options.MaxQueuedPerSession));
        }

        if (!Enum.IsDefined(options.QueueOverflow))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.QueueOverflow must be RejectNewest or CancelOldest (was {0}).", options.QueueOverflow));
        }

        if (options.MaxActiveRuns < 0)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.MaxActiveRuns must be 0 (unlimited) or more (was {0}).", options.MaxActiveRuns));
        }

        foreach (KeyValuePair<string, int> lane in options.Lanes)
        {
            if (string.IsNullOrWhiteSpace(lane.Key))
            {
                Add(ref failures, "RunSupervisorOptions.Lanes: a lane name must not be empty or white space.");
            }
            else if (string.Equals(lane.Key, "default", StringComparison.Ordinal))
            {
                // Logs, metrics and the health check's per-lane data call the default lane "default".
                Add(ref failures, "RunSupervisorOptions.Lanes: the lane name 'default' is reserved for the default lane.");
            }
            else if (lane.Value < 1)
            {
                Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lanes['{0}'] must be at least 1 (was {1}).", lane.Key, lane.Value));
            }
        }

        if (options.IdleTimeout is { } idle && (idle <= TimeSpan.Zero || idle > RunSupervisorOptions.RunTimeoutLimit))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.IdleTimeout must be null (off) or greater than 00:00:00 and at most {0} (was {1}).", RunSupervisorOptions.RunTimeoutLimit, idle));
        }

        ValidateLease(options.Lease, ref failures);
        return failures is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> when <paramref name="options"/> is invalid.</summary>
    public static void ThrowIfInvalid(RunSupervisorOptions options)
    {
        ValidateOptionsResult result = Instance.Validate(Microsoft.Extensions.Options.Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Microsoft.Extensions.Options.Options.DefaultName, typeof(RunSupervisorOptions), result.Failures);
        }
    }

    private static void ValidateLease(RunLeaseOptions lease, ref List<string>? failures)
    {
        if (lease is null)
        {
            Add(ref failures, "RunSupervisorOptions.Lease must not be null.");
            return;
        }

        if (lease.LeaseTtl < TimeSpan.FromSeconds(1) || lease.LeaseTtl > TimeSpan.FromHours(1))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.LeaseTtl must be between 00:00:01 and 01:00:00 (was {0}).", lease.LeaseTtl));
        }

        if (lease.LeaseSafetyMargin < TimeSpan.Zero || lease.LeaseSafetyMargin >= lease.LeaseTtl)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.LeaseSafetyMargin must be at least 00:00:00 and less than LeaseTtl ({0}) (was {1}).", lease.LeaseTtl, lease.LeaseSafetyMargin));
        }
        else if (lease.RenewInterval <= TimeSpan.Zero || lease.RenewInterval >= (lease.LeaseTtl - lease.LeaseSafetyMargin) / 2)
        {
            // Two renew attempts fit in every validity window, so one lost renew never costs a lease.
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.RenewInterval must be greater than 00:00:00 and less than (LeaseTtl - LeaseSafetyMargin) / 2 = {0} (was {1}).", (lease.LeaseTtl - lease.LeaseSafetyMargin) / 2, lease.RenewInterval));
        }

        if (lease.AcquireTimeout <= TimeSpan.Zero || lease.AcquireTimeout > lease.LeaseTtl)
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.AcquireTimeout must be greater than 00:00:00 and at most LeaseTtl ({0}) (was {1}).", lease.LeaseTtl, lease.AcquireTimeout));
        }

        if (lease.RemoteIdlePollInterval <= TimeSpan.Zero || lease.RemoteIdlePollInterval > TimeSpan.FromHours(1))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.RemoteIdlePollInterval must be greater than 00:00:00 and at most 01:00:00 (was {0}).", lease.RemoteIdlePollInterval));
        }

        if (!Enum.IsDefined(lease.OnStoreUnavailable))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.OnStoreUnavailable must be FailClosed or FailOpen (was {0}).", lease.OnStoreUnavailable));
        }

        if (lease.HostId is { } hostId && (string.IsNullOrWhiteSpace(hostId) || hostId.Length > 200))
        {
            Add(ref failures, string.Format(CultureInfo.InvariantCulture, "RunSupervisorOptions.Lease.HostId must be null (generated) or 1 to 200 characters, not only white space (was '{0}').", hostId));
        }
    }

    private static void Add(ref List<string>? failures, string failure) => (failures ??= []).Add(failure);
}
