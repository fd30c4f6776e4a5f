using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GenericHostHeartbeat;

/// <summary>
/// <c>--duration &lt;seconds&gt;</c>: stops the host after that long, through <see cref="IHostApplicationLifetime.StopApplication"/>,
/// the same path Ctrl+C takes. So a CI smoke run exercises the real graceful shutdown, drain summary included.
/// </summary>
internal sealed class SmokeRunDuration : BackgroundService
{
    private readonly TimeSpan _duration;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public SmokeRunDuration(TimeSpan duration, IHostApplicationLifetime lifetime, TimeProvider timeProvider, ILogger<SmokeRunDuration> logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(duration, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(lifetime);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _duration = duration;
        _lifetime = lifetime;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(_duration, _timeProvider, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped earlier (Ctrl+C): nothing left to do.
            return;
        }

        _logger.DurationElapsed(_duration.TotalSeconds);
        _lifetime.StopApplication();
    }
}
