using Microsoft.Extensions.Logging;
using RunSupervisor;
using RunSupervisor.Agents;

namespace Microsoft.Agents.AI;

/// <summary>Adds a <see cref="SupervisedAgent"/> to an <see cref="AIAgentBuilder"/> pipeline.</summary>
public static class RunSupervisorAIAgentBuilderExtensions
{
    /// <summary>
    /// Adds a <see cref="SupervisedAgent"/>: every turn of a session (<c>RunAsync</c>, <c>RunStreamingAsync</c>) runs
    /// as one supervised run of the registry, tools included. Add it first (outermost), so that one run spans
    /// everything inside it.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="registry">
    /// The registry; <see langword="null"/> to resolve <see cref="ActiveRunRegistry"/> from the builder's
    /// <see cref="IServiceProvider"/> (<c>services.AddRunSupervisor()</c> registers it).
    /// </param>
    /// <param name="configure">Configures the agent's options; <see langword="null"/> for the defaults.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The registry, the options and an <see cref="ILoggerFactory"/> (from the service provider, if it has one) are
    /// resolved, and the options validated, when the pipeline is built: <see cref="AIAgentBuilder.Build(IServiceProvider)"/>
    /// throws <see cref="InvalidOperationException"/> when no registry was given and none is registered, and the
    /// <see cref="SupervisedAgent"/> constructor's exceptions for invalid options.
    /// </remarks>
    public static AIAgentBuilder UseRunSupervisor(this AIAgentBuilder builder, ActiveRunRegistry? registry = null, Action<SupervisedAgentOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Use((innerAgent, services) =>
        {
            ActiveRunRegistry resolved = AdapterSupport.ResolveRegistry(registry, services, nameof(UseRunSupervisor));
            var options = new SupervisedAgentOptions();
            configure?.Invoke(options);
            return new SupervisedAgent(innerAgent, resolved, options, AdapterSupport.ResolveLoggerFactory(services));
        });
    }
}
