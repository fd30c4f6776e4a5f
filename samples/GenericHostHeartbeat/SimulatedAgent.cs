using Microsoft.Extensions.Logging;

namespace GenericHostHeartbeat;

/// <summary>
/// The agent's model call, simulated: most turns answer in 300 ms; every fifth turn (2, 7, 12, …) hangs the way a dead
/// provider connection does, and ignores its cancellation token while it hangs. Nothing here knows about RunSupervisor:
/// it only receives the run's abort token, like any provider call would.
/// </summary>
internal sealed class SimulatedAgent
{
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public SimulatedAgent(TimeProvider timeProvider, ILogger<SimulatedAgent> logger)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>Runs one agent turn: calls the model and returns its reply.</summary>
    /// <param name="turn">The host's turn number (1-based); it decides whether this call hangs.</param>
    /// <param name="runId">The supervised run's id, for the log.</param>
    /// <param name="abortToken">The run's abort token; a healthy call honours it, a hung one does not.</param>
    public async Task<string> RespondAsync(int turn, long runId, CancellationToken abortToken)
    {
        if (!Scenario.Hangs(turn))
        {
            _logger.CallingModel(turn, runId);
            await Task.Delay(Scenario.HealthyCallDuration, _timeProvider, abortToken).ConfigureAwait(false);
            return $"the model answered in {Scenario.HealthyCallDuration.TotalMilliseconds:0} ms";
        }

        _logger.CallingHangingModel(turn, runId, Scenario.HungCallDuration);

        // Only to make the abort visible in the log: the watchdog's cancellation arrives, and nothing happens.
        using CancellationTokenRegistration abortSeen = abortToken.Register(() => _logger.AbortIgnored(turn, runId));

        // THE BUG this sample survives: the call waits with CancellationToken.None (as a hand-rolled stream reader on a
        // dead connection does), so neither the deadline's abort nor the shutdown drain's can end it. Only RunSupervisor's
        // force eviction gives the session back; this task lives on in the abandoned ledger until it settles.
        await Task.Delay(Scenario.HungCallDuration, _timeProvider, CancellationToken.None).ConfigureAwait(false);
        return "a late reply nobody is waiting for any more";
    }
}
