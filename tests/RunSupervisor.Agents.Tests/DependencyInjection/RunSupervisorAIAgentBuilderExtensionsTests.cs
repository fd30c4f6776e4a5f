using Microsoft.Extensions.DependencyInjection;

namespace RunSupervisor.Agents.Tests.DependencyInjection;

public sealed class RunSupervisorAIAgentBuilderExtensionsTests
{
    [Fact]
    public void UseRunSupervisor_WithRegistry_BuildsASupervisedAgentOverTheInnerOne()
    {
        using var f = new AgentFixture();
        var inner = new FakeAgent();

        AIAgent agent = inner.AsBuilder().UseRunSupervisor(f.Registry).Build();

        agent.Should().BeOfType<SupervisedAgent>();
        agent.GetService(typeof(ActiveRunRegistry)).Should().BeSameAs(f.Registry);
        agent.GetService<FakeAgent>().Should().BeSameAs(inner);
    }

    [Fact]
    public void UseRunSupervisor_NoRegistry_ResolvesTheRegistryFromTheServiceProvider()
    {
        using ServiceProvider services = new ServiceCollection().AddRunSupervisor().BuildServiceProvider();

        AIAgent agent = new FakeAgent().AsBuilder().UseRunSupervisor().Build(services);

        agent.GetService(typeof(ActiveRunRegistry)).Should().BeSameAs(services.GetRequiredService<ActiveRunRegistry>());
    }

    [Fact]
    public void UseRunSupervisor_NoRegistryAndNoneRegistered_BuildThrowsInvalidOperationExceptionNamingAddRunSupervisor()
    {
        using ServiceProvider services = new ServiceCollection().BuildServiceProvider();
        AIAgentBuilder builder = new FakeAgent().AsBuilder().UseRunSupervisor();

        FluentActions.Invoking(() => builder.Build(services)).Should().Throw<InvalidOperationException>().WithMessage("*AddRunSupervisor*");
    }

    [Fact]
    public void UseRunSupervisor_InvalidOptions_BuildThrows()
    {
        using var f = new AgentFixture();
        AIAgentBuilder builder = new FakeAgent().AsBuilder()
            .UseRunSupervisor(f.Registry, o => o.RunStartOptions = new RunStartOptions { GracePeriod = TimeSpan.FromSeconds(-1) });

        FluentActions.Invoking(() => builder.Build()).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void UseRunSupervisor_NullBuilder_ThrowsArgumentNullException()
    {
        FluentActions.Invoking(() => RunSupervisorAIAgentBuilderExtensions.UseRunSupervisor(null!))
            .Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("builder");
    }
}
