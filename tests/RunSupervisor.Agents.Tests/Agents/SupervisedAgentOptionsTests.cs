namespace RunSupervisor.Agents.Tests.Agents;

/// <summary>The agent's options are validated when the agent is built, with exceptions that name what is wrong.</summary>
public sealed class SupervisedAgentOptionsTests
{
    [Fact]
    public void Constructor_UndefinedWhenBusy_ThrowsArgumentOutOfRangeNamingTheOption()
    {
        using var f = new AgentFixture();

        FluentActions.Invoking(() => f.Agent(new FakeAgent(), o => o.WhenBusy = (SessionBusyBehavior)42))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*SupervisedAgentOptions.WhenBusy*").Which.ParamName.Should().Be("options");
    }

    [Fact]
    public void Constructor_RunStartOptionsSetWhenBusy_ThrowsArgumentExceptionPointingAtWhenBusy()
    {
        using var f = new AgentFixture();

        FluentActions.Invoking(() => f.Agent(new FakeAgent(), o => o.RunStartOptions = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait }))
            .Should().Throw<ArgumentException>().WithMessage("*RunStartOptions.WhenBusy*SupervisedAgentOptions.WhenBusy*");
    }

    [Fact]
    public void Constructor_RunStartOptionsSetBackground_ThrowsArgumentExceptionPointingAtTheSelector()
    {
        using var f = new AgentFixture();

        FluentActions.Invoking(() => f.Agent(new FakeAgent(), o => o.RunStartOptions = new RunStartOptions { Background = true }))
            .Should().Throw<ArgumentException>().WithMessage("*Background*BackgroundSelector*").Which.ParamName.Should().Be("options");
    }

    [Fact]
    public void Constructor_RunStartOptionsOutOfTheRegistrysRange_FailsWhenTheAgentIsBuiltNotAtTheFirstTurn()
    {
        using var f = new AgentFixture();
        var inner = new FakeAgent();

        FluentActions.Invoking(() => f.Agent(inner, o => o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(-1) }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RunStartOptions.Timeout*");
        FluentActions.Invoking(() => f.Agent(inner, o => o.RunStartOptions = new RunStartOptions { IdleTimeout = TimeSpan.Zero }))
            .Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => f.Agent(inner, o => o.RunStartOptions = new RunStartOptions { Lane = "nightly" }))
            .Should().Throw<ArgumentException>().WithMessage("*'nightly'*");
        inner.Calls.Should().Be(0);
    }

    [Fact]
    public void Constructor_NullArguments_ThrowArgumentNullException()
    {
        using var f = new AgentFixture();

        FluentActions.Invoking(() => new SupervisedAgent(null!, f.Registry)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => new SupervisedAgent(new FakeAgent(), null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("registry");
    }

    [Fact]
    public async Task Constructor_OptionsChangedAfterwards_DoNotReachTheAgent()
    {
        using var f = new AgentFixture();
        var options = new SupervisedAgentOptions { WhenBusy = SessionBusyBehavior.Reject };
        var agent = new SupervisedAgent(new FakeAgent(), f.Registry, options);
        AgentSession session = await agent.CreateSessionAsync();
        using RunHandle current = f.Registry.Start(SupervisedAgent.GetSessionId(session));

        options.WhenBusy = SessionBusyBehavior.Supersede;

        await FluentActions.Awaiting(() => agent.RunAsync("hi", session).Guard()).Should().ThrowAsync<SessionBusyException>();
        current.IsCurrent.Should().BeTrue();
    }
}
