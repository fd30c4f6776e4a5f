using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GenericHostHeartbeat;

/// <summary>
/// Prints the health report every few seconds, as a health endpoint would serve it: evaluated through
/// <see cref="HealthCheckService"/>, so the RunSupervisor check runs exactly as it would behind <c>MapHealthChecks</c>.
/// </summary>
internal sealed class HealthReporter : BackgroundService
{
    private readonly HealthCheckService _healthChecks;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public HealthReporter(HealthCheckService healthChecks, TimeProvider timeProvider, ILogger<HealthReporter> logger)
    {
        ArgumentNullException.ThrowIfNull(healthChecks);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _healthChecks = healthChecks;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(Scenario.FirstHealthReport, _timeProvider, stoppingToken).ConfigureAwait(false);
            using var timer = new PeriodicTimer(Scenario.HealthReportInterval, _timeProvider);
            do
            {
                await ReportAsync(stoppingToken).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }
    }

    private async Task ReportAsync(CancellationToken cancellationToken)
    {
        HealthReport report;
        try
        {
            report = await _healthChecks.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A failing report must not stop the reporting (nor the host): log it and try again at the next tick.
            _logger.HealthCheckFailed(ex);
            return;
        }

        foreach ((string name, HealthReportEntry entry) in report.Entries)
        {
            LogLevel level = entry.Status == HealthStatus.Healthy ? LogLevel.Information : LogLevel.Warning;
            string data = string.Join(", ", entry.Data.Select(static pair => $"{pair.Key}={Format(pair.Value)}"));
            _logger.HealthReported(level, $"{name} {entry.Status}", entry.Description, data);
        }
    }

    private static string Format(object value) => value switch
    {
        double seconds => seconds.ToString("0.0", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
