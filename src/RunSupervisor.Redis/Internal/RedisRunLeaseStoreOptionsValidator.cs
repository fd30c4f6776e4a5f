using System.Globalization;
using Microsoft.Extensions.Options;

namespace RunSupervisor.Redis;

/// <summary>Validates <see cref="RedisRunLeaseStoreOptions"/>; used by dependency injection and by the store's constructor.</summary>
internal sealed class RedisRunLeaseStoreOptionsValidator : IValidateOptions<RedisRunLeaseStoreOptions>
{
    public static readonly TimeSpan OperationTimeoutLimit = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan FenceRetentionMinimum = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan FenceRetentionLimit = TimeSpan.FromDays(365);

    public static RedisRunLeaseStoreOptionsValidator Instance { get; } = new();

    public ValidateOptionsResult Validate(string? name, RedisRunLeaseStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<string> failures = [];
        CheckPrefix(failures, nameof(RedisRunLeaseStoreOptions.KeyPrefix), options.KeyPrefix);
        CheckPrefix(failures, nameof(RedisRunLeaseStoreOptions.ChannelPrefix), options.ChannelPrefix);

        if (options.Database < -1)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RedisRunLeaseStoreOptions.Database must be -1 (the connection's default) or a database number (was {0}).", options.Database));
        }

        if (options.OperationTimeout <= TimeSpan.Zero || options.OperationTimeout > OperationTimeoutLimit)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RedisRunLeaseStoreOptions.OperationTimeout must be greater than 00:00:00 and at most {0} (was {1}).", OperationTimeoutLimit, options.OperationTimeout));
        }

        if (options.FenceRetention < FenceRetentionMinimum || options.FenceRetention > FenceRetentionLimit)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RedisRunLeaseStoreOptions.FenceRetention must be between {0} and {1} (was {2}).", FenceRetentionMinimum, FenceRetentionLimit, options.FenceRetention));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public static void ThrowIfInvalid(RedisRunLeaseStoreOptions options)
    {
        ValidateOptionsResult result = Instance.Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(RedisRunLeaseStoreOptions), result.Failures);
        }
    }

    private static void CheckPrefix(List<string> failures, string name, string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > RedisRunLeaseStoreOptions.MaxPrefixLength || value.AsSpan().IndexOfAny('{', '}') >= 0)
        {
            failures.Add(string.Format(CultureInfo.InvariantCulture, "RedisRunLeaseStoreOptions.{0} must be 1 to {1} characters without '{{' or '}}' (was {2}).", name, RedisRunLeaseStoreOptions.MaxPrefixLength, value is null ? "null" : "'" + value + "'"));
        }
    }
}
