using Microsoft.Extensions.Logging;
using RunSupervisor;
using RunSupervisor.Extensions.AI;

namespace Microsoft.Extensions.AI;

/// <summary>Adds a <see cref="SupervisedChatClient"/> to a <see cref="ChatClientBuilder"/> pipeline.</summary>
public static class RunSupervisorChatClientBuilderExtensions
{
    /// <summary>
    /// Adds a <see cref="SupervisedChatClient"/>: every call of a session runs as a supervised run of the registry,
    /// streaming included. Add it first (outermost), so that one run spans everything inside it, tool calls included.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="registry">
    /// The registry; <see langword="null"/> to resolve <see cref="ActiveRunRegistry"/> from the builder's
    /// <see cref="IServiceProvider"/> (<c>services.AddRunSupervisor()</c> registers it).
    /// </param>
    /// <param name="configure">Configures the client's options; <see langword="null"/> for the defaults.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The registry, the options and an <see cref="ILoggerFactory"/> (from the service provider, if it has one) are
    /// resolved when the pipeline is built; <see cref="ChatClientBuilder.Build(IServiceProvider?)"/> throws
    /// <see cref="InvalidOperationException"/> when no registry was given and none is registered.
    /// </remarks>
    public static ChatClientBuilder UseRunSupervisor(this ChatClientBuilder builder, ActiveRunRegistry? registry = null, Action<SupervisedChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Use((innerClient, services) =>
        {
            ActiveRunRegistry resolved = AdapterSupport.ResolveRegistry(registry, services, nameof(UseRunSupervisor));
            var options = new SupervisedChatClientOptions();
            configure?.Invoke(options);
            return new SupervisedChatClient(innerClient, resolved, options, AdapterSupport.ResolveLoggerFactory(services));
        });
    }

    /// <summary>
    /// Adds a <see cref="SupervisedChatClient"/> that uses the <see cref="ActiveRunRegistry"/> registered in the
    /// builder's <see cref="IServiceProvider"/>; see <see cref="UseRunSupervisor(ChatClientBuilder, ActiveRunRegistry?, Action{SupervisedChatClientOptions}?)"/>.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Configures the client's options.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> or <paramref name="configure"/> is <see langword="null"/>.</exception>
    public static ChatClientBuilder UseRunSupervisor(this ChatClientBuilder builder, Action<SupervisedChatClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return builder.UseRunSupervisor(registry: null, configure);
    }
}
