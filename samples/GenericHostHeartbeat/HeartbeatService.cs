using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RunSupervisor;

namespace GenericHostHeartbeat;

/// <summary>
/// The host's heartbeat: once a second it asks <see cref="HeartbeatQueuePolicy"/> what the tick does for the session.
/// RunNow starts an agent turn as a supervised run (<see cref="ActiveRunRegistry.RunAsync{T}"/>); Drop is logged with the
/// policy's reason. When the policy raises <see cref="HeartbeatQueuePolicy.HeartbeatOwed"/> (the session dropped ticks
/// and is idle again: after a hung run's force eviction, for instance) the owed tick is delivered at once.
/// </summary>
internal sealed class HeartbeatService : BackgroundService
{
    private readonly ActiveRunRegistry _registry;
    private readonly HeartbeatQueuePolicy _policy;
    private readonly SimulatedAgent _agent;
    private readonly RecoveryMonitor _monitor;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private int _turns;

    public HeartbeatService(ActiveRunRegistry registry, HeartbeatQueuePolicy policy, SimulatedAgent agent, RecoveryMonitor monitor, TimeProvider timeProvider, ILogger<HeartbeatService> logger)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(monitor);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _registry = registry;
        _policy = policy;
        _agent = agent;
        _monitor = monitor;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Regular ticks and owed ticks share one queue and one reader: deliveries never overlap, so a RunNow decision
        // cannot be overtaken by another start on the session between Resolve and RunAsync.
        Channel<HeartbeatTrigger> triggers = Channel.CreateUnbounded<HeartbeatTrigger>(new UnboundedChannelOptions { SingleReader = true });

        // Raised on whichever thread ended the run (the watchdog's timer for an eviction): only queue the tick there.
        void OnHeartbeatOwed(object? sender, HeartbeatOwedEventArgs e)
        {
            if (string.Equals(e.SessionId, Scenario.SessionId, StringComparison.Ordinal))
            {
                triggers.Writer.TryWrite(HeartbeatTrigger.Owed(e.DroppedHeartbeats));
            }
        }

        _policy.HeartbeatOwed += OnHeartbeatOwed;
        Task ticking = TickAsync(triggers.Writer, stoppingToken);
        try
        {
            await foreach (HeartbeatTrigger trigger in triggers.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                Deliver(trigger);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping. Runs still in flight are not aborted here: RunSupervisor.Hosting's shutdown drain
            // (stopped after this service) aborts, waits for and evicts them, and logs the summary.
        }
        finally
        {
            _policy.HeartbeatOwed -= OnHeartbeatOwed;
            await ticking.ConfigureAwait(false);
        }
    }

    private async Task TickAsync(ChannelWriter<HeartbeatTrigger> writer, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Scenario.HeartbeatInterval, _timeProvider);
        int tick = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                writer.TryWrite(HeartbeatTrigger.Tick(++tick));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }
    }

    private void Deliver(HeartbeatTrigger trigger)
    {
        if (trigger.IsOwed)
        {
            _logger.HeartbeatOwed(Scenario.SessionId, trigger.OwedFor);
        }

        QueueDecision decision = _policy.Resolve(new QueueRequest(Scenario.SessionId, IsHeartbeat: true));
        if (decision.Action != QueueAction.RunNow)
        {
            // A dropped tick is counted and owed by the policy; the count is the streak the health check watches.
            _logger.HeartbeatNotRun(trigger.Label, decision.Action.ToString(), decision.Reason, _policy.GetDroppedHeartbeats(Scenario.SessionId));
            return;
        }

        int turn = ++_turns;
        _logger.HeartbeatRunNow(trigger.Label, decision.Action.ToString(), decision.Reason, turn);
        StartTurn(turn, trigger.Label);
    }

    private void StartTurn(int turn, string heartbeat)
    {
        Task<string> run;
        try
        {
            // No caller token: at shutdown the in-flight run belongs to RunSupervisor.Hosting's drain, which aborts it,
            // waits out the grace period and reports it; cancelling it here first would hide that from the summary.
            run = _registry.RunAsync(Scenario.SessionId, abortToken =>
            {
                // RunAsync registers the run before it calls the provider, and this loop is the session's only starter,
                // so the session's run here is this one: its id is the fencing token the verdict compares.
                long runId = _registry.TryGetRun(Scenario.SessionId, out RunInfo? info) ? info.RunId : 0;
                _monitor.RunStarted(runId);
                return _agent.RespondAsync(turn, runId, abortToken);
            });
        }
        catch (Exception ex) when (ex is SessionBusyException or ObjectDisposedException)
        {
            // Not expected (the policy just found the session idle, and the registry outlives this service), but a
            // heartbeat loop must survive one bad tick rather than stop the heartbeat for good.
            _logger.RunNotStarted(heartbeat, ex);
            return;
        }

        // Not awaited: the heartbeat keeps ticking (and dropping) while the turn runs; that is the point.
        _ = ObserveAsync(turn, run);
    }

    private async Task ObserveAsync(int turn, Task<string> run)
    {
        try
        {
            string reply = await run.ConfigureAwait(false);
            _logger.TurnCompleted(turn, reply);
        }
        catch (RunEvictedException ex)
        {
            // RunAsync never outlives the watchdog: it throws at deadline + grace even though the call is still hanging.
            _logger.TurnEvicted(turn, ex.Age);
        }
        catch (Exception ex)
        {
            // Timed out, aborted by the shutdown drain, or the call's own failure: a turn's outcome is only logged here.
            _logger.TurnFailed(turn, ex.GetType().Name, ex.Message);
        }
    }
}
