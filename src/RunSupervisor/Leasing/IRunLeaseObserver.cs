namespace RunSupervisor.Leasing;

/// <summary>Receives a host's lease notifications from an <see cref="IRunLeaseStore"/>; implemented by <see cref="ActiveRunRegistry"/>.</summary>
public interface IRunLeaseObserver
{
    /// <summary>Handles one notification. Called on any thread; must return quickly and must not throw.</summary>
    /// <param name="notification">The notification.</param>
    void OnNotification(RunLeaseNotification notification);
}
