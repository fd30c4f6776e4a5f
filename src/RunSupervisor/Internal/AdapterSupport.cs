using Microsoft.Extensions.Logging;

namespace RunSupervisor;

/// <summary>
/// What every adapter package (the chat-client and the agent middleware) needs from the core when it is built and
/// when it picks a call's session: one place, so their options are validated, their registry resolved and their
/// session ids checked the same way, with the same words.
/// </summary>
internal static class AdapterSupport
{
    /// <summary>
    /// Returns <paramref name="registry"/>, or the one registered in <paramref name="services"/>; throws a clear
    /// <see cref="InvalidOperationException"/> naming <paramref name="method"/> when there is neither.
    /// </summary>
    /// <param name="registry">The registry the caller passed, or <see langword="null"/>.</param>
    /// <param name="services">The builder's service provider, if any.</param>
    /// <param name="method">The builder method, for the message (e.g. <c>UseRunSupervisor</c>).</param>
    /// <returns>The registry.</returns>
    public static ActiveRunRegistry ResolveRegistry(ActiveRunRegistry? registry, IServiceProvider? services, string method)
        => registry
            ?? services?.GetService(typeof(ActiveRunRegistry)) as ActiveRunRegistry
            ?? throw new InvalidOperationException(
                $"{method} needs an ActiveRunRegistry: pass one, or register one in the service provider the pipeline is built with (services.AddRunSupervisor()).");

    /// <summary>Returns the <see cref="ILoggerFactory"/> registered in <paramref name="services"/>, if any.</summary>
    /// <param name="services">The builder's service provider, if any.</param>
    /// <returns>The logger factory, or <see langword="null"/>.</returns>
    public static ILoggerFactory? ResolveLoggerFactory(IServiceProvider? services)
        => services?.GetService(typeof(ILoggerFactory)) as ILoggerFactory;

    /// <summary>
    /// Validates an adapter's busy behaviour and per-run overrides against <paramref name="registry"/> and returns the
    /// options each of its runs starts with (<see langword="null"/> when the registry's defaults do), copied so that
    /// later changes to the caller's object do not leak in.
    /// </summary>
    /// <param name="registry">The registry the runs start on.</param>
    /// <param name="perRun">The adapter's per-run overrides, or <see langword="null"/>.</param>
    /// <param name="whenBusy">The adapter's busy behaviour.</param>
    /// <param name="background">Whether the runs are background runs.</param>
    /// <param name="whenBusyOption">The busy behaviour option's full name, for messages (e.g. <c>SupervisedChatClientOptions.BusyBehavior</c>).</param>
    /// <param name="perRunOption">The per-run overrides option's full name, for messages.</param>
    /// <param name="paramName">The adapter constructor's options parameter, named by the exceptions.</param>
    /// <returns>The start options, or <see langword="null"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="whenBusy"/> is not defined, or an override is out of the registry's range.</exception>
    /// <exception cref="ArgumentException"><paramref name="perRun"/> sets <see cref="RunStartOptions.WhenBusy"/>, or names an unknown lane.</exception>
    public static RunStartOptions? ComposeStartOptions(
        ActiveRunRegistry registry,
        RunStartOptions? perRun,
        SessionBusyBehavior whenBusy,
        bool background,
        string whenBusyOption,
        string perRunOption,
        string paramName)
    {
        if (!Enum.IsDefined(whenBusy))
        {
            throw new ArgumentOutOfRangeException(paramName, whenBusy, $"{whenBusyOption} must be Reject, Supersede or Wait.");
        }

        if (perRun is { WhenBusy: not SessionBusyBehavior.Reject })
        {
            throw new ArgumentException($"{perRunOption}.WhenBusy must be left at Reject: set {whenBusyOption} instead.", paramName);
        }

        if (perRun is null && whenBusy == SessionBusyBehavior.Reject && !background)
        {
            return null;
        }

        var composed = new RunStartOptions
        {
            Timeout = perRun?.Timeout,
            GracePeriod = perRun?.GracePeriod,
            QueueTimeout = perRun?.QueueTimeout,
            IdleTimeout = perRun?.IdleTimeout,
            Background = background || (perRun?.Background ?? false),
            Lane = perRun?.Lane,
            WhenBusy = whenBusy,
        };

        // Validated against the registry now: an invalid value fails the build of the adapter, not every call.
        registry.ValidateStartOptions(composed);
        return composed;
    }

    /// <summary>
    /// Checks a session id an adapter picked for a call (not <see langword="null"/>: that call is unsupervised), with a
    /// message that says where the id came from: a host rarely thinks of, say, a conversation id as a "sessionId".
    /// </summary>
    /// <param name="sessionId">The id.</param>
    /// <param name="source">Where it came from (e.g. <c>ChatOptions.ConversationId</c>).</param>
    /// <param name="paramName">The parameter of the call it came from.</param>
    /// <exception cref="ArgumentException">The id is empty, only white space or too long.</exception>
    public static void ValidateSessionId(string sessionId, string source, string paramName)
    {
        if (string.IsNullOrWhiteSpace(sessionId) || sessionId.Length > SessionIds.MaxLength)
        {
            throw new ArgumentException(
                $"The call's session id (from {source}) must be null (unsupervised) or 1 to {SessionIds.MaxLength} characters and not only white space.",
                paramName);
        }
    }
}
