using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>How a busy session becomes idle again, for the <see cref="HeartbeatQueuePolicy.HeartbeatOwed"/> theories.</summary>
public enum IdleTransition
{
    /// <summary>The owner disposes the handle (reason Completed).</summary>
    Release,

    /// <summary>The deadline passes, then the owner disposes the handle within the grace period (reason TimedOut).</summary>
    ReleaseAfterTimeout,

    /// <summary><see cref="RunHandle.Abort(string?)"/>, and the attached provider honours the token (reason Aborted).</summary>
    AbortHonoured,

    /// <summary>The provider never settles: the watchdog force-evicts at deadline + grace (reason ForceEvicted).</summary>
    ForceEviction,

    /// <summary><see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/>, then the owner disposes the handle (reason Aborted).</summary>
    TryAbortThenRelease,

    /// <summary>The registry is disposed, which ends every run (reason Aborted).</summary>
    RegistryDisposed,
}

/// <summary>
/// A <see cref="RegistryFixture"/> plus a <see cref="HeartbeatQueuePolicy"/> logging into the same
/// <see cref="FakeLogCollector"/> (so registry and policy lines interleave in the order they happened),
/// and a recorder of every <see cref="HeartbeatQueuePolicy.HeartbeatOwed"/>.
/// </summary>
internal sealed class PolicyFixture : IDisposable
{
    public PolicyFixture(RunSupervisorOptions? options = null)
    {
        F = new RegistryFixture(options);
        Policy = new HeartbeatQueuePolicy(F.Registry, F.LoggerFactory.CreateLogger<HeartbeatQueuePolicy>());
        Policy.HeartbeatOwed += (_, e) =>
        {
            lock (Owed)
            {
                Owed.Add(e);
            }
        };
    }

    public RegistryFixture F { get; }

    public ActiveRunRegistry Registry => F.Registry;

    public FakeTimeProvider Time => F.Time;

    public HeartbeatQueuePolicy Policy { get; }

    /// <summary>Every HeartbeatOwed raised, in order.</summary>
    public List<HeartbeatOwedEventArgs> Owed { get; } = [];

    public QueueDecision Heartbeat(string sessionId, bool hasQueuedFollowups = false)
        => Policy.Resolve(new QueueRequest(sessionId, IsHeartbeat: true, HasQueuedFollowups: hasQueuedFollowups));

    /// <summary>Resolves <paramref name="count"/> heartbeats that must all be dropped.</summary>
    public void DropHeartbeats(string sessionId, int count)
    {
        for (int i = 0; i < count; i++)
        {
            Heartbeat(sessionId).Action.Should().Be(QueueAction.Drop, "the session is busy, so heartbeat {0} must be dropped", i + 1);
        }
    }

    public void Dispose()
    {
        Policy.Dispose();
        F.Dispose();
    }
}

internal static class IdleTransitions
{
    /// <summary>
    /// Makes <paramref name="run"/> leave the registry the way <paramref name="how"/> says and returns the end
    /// reason that way must produce. Every step is synchronous on the caller's thread (FakeTimeProvider fires
    /// due timers inside Advance; an inline-completing provider task settles inside Abort).
    /// </summary>
    public static RunEndReason End(PolicyFixture p, RunHandle run, IdleTransition how)
    {
        switch (how)
        {
            case IdleTransition.Release:
                run.Dispose();
                return RunEndReason.Completed;

            case IdleTransition.ReleaseAfterTimeout:
                p.Time.Advance(p.F.Options.RunTimeout);
                run.Status.Should().Be(RunStatus.Aborting, "the deadline has passed but the grace period has not");
                run.Dispose();
                return RunEndReason.TimedOut;

            case IdleTransition.AbortHonoured:
                // A provider that honours the token: the abort cancels it, the task is cancelled, the run settles.
                var provider = new TaskCompletionSource();
                run.AbortToken.Register(() => provider.TrySetCanceled(run.AbortToken));
                run.Attach(provider.Task);
                run.Abort("test").Should().BeTrue();
                return RunEndReason.Aborted;

            case IdleTransition.ForceEviction:
                p.Time.Advance(p.F.Options.RunTimeout + p.F.Options.GracePeriod);
                return RunEndReason.ForceEvicted;

            case IdleTransition.TryAbortThenRelease:
                p.Registry.TryAbort(run.SessionId, run.RunId, "test").Should().BeTrue();
                p.Registry.IsActive(run.SessionId).Should().BeTrue("an abort only starts the grace period");
                run.Dispose();
                return RunEndReason.Aborted;

            case IdleTransition.RegistryDisposed:
                p.Registry.Dispose();
                return RunEndReason.Aborted;

            default:
                throw new ArgumentOutOfRangeException(nameof(how), how, null);
        }
    }

    public static TheoryData<IdleTransition> All() => Where(_ => true);

    /// <summary>
    /// Every transition after which the session can run a heartbeat again. The registry's disposal is not one of
    /// them: by decision (commit 396bc46) runs ended by disposal raise no HeartbeatOwed, as the host would call
    /// back into a disposed registry.
    /// </summary>
    public static TheoryData<IdleTransition> AllThatOweAHeartbeat() => Where(how => how != IdleTransition.RegistryDisposed);

    private static TheoryData<IdleTransition> Where(Func<IdleTransition, bool> predicate)
    {
        var data = new TheoryData<IdleTransition>();
        foreach (IdleTransition how in Enum.GetValues<IdleTransition>().Where(predicate))
        {
            data.Add(how);
        }

        return data;
    }
}
