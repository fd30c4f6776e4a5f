using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>
/// The one place foreign code (event handlers, internal listeners, activity listeners) is called from: a failure is
/// logged with the session it concerns and never reaches the registry, the caller or the other subscribers.
/// </summary>
internal static class Callbacks
{
    public const string ActivityListener = "activity listener";

    /// <summary>Raises <paramref name="handlers"/> one by one; one failing handler does not starve the rest.</summary>
    public static void Raise<TArgs>(EventHandler<TArgs> handlers, object sender, TArgs args, string eventName, string sessionId, ILogger logger)
    {
        foreach (EventHandler<TArgs> handler in Delegate.EnumerateInvocationList(handlers))
        {
            try
            {
                handler(sender, args);
            }
#pragma warning disable CA1031 // A subscriber's failure must not break the registry or starve the other subscribers.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                logger.CallbackFailed(eventName, sessionId, ex);
            }
        }
    }

    public static void Invoke(IRunEndListener listener, string sessionId, bool sessionIdle, ILogger logger)
    {
        try
        {
            listener.OnRunEnded(sessionId, sessionIdle);
        }
#pragma warning disable CA1031 // An internal listener raises foreign events of its own; its failure must not stop the end from being published.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            logger.CallbackFailed(listener.GetType().Name, sessionId, ex);
        }
    }

    /// <summary>Runs <paramref name="call"/>; on failure logs it and returns the default.</summary>
    public static TResult? Guard<TState, TResult>(Func<TState, TResult> call, TState state, string callbackName, string sessionId, ILogger logger)
    {
        try
        {
            return call(state);
        }
#pragma warning disable CA1031 // A listener's failure must not fail the transition it observes: the run's state is already final.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            logger.CallbackFailed(callbackName, sessionId, ex);
            return default;
        }
    }
}
