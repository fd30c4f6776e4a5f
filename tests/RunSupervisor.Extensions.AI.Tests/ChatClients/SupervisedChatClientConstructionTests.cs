using Microsoft.Extensions.DependencyInjection;
using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>The constructor, <c>UseRunSupervisor</c> on a <see cref="ChatClientBuilder"/>, and <c>GetService</c>.</summary>
public sealed class SupervisedChatClientConstructionTests
{
    [Fact]
    public void Constructor_NullArguments_ThrowArgumentNullException()
    {
        using var registry = new ActiveRunRegistry();

        FluentActions.Invoking(() => new SupervisedChatClient(null!, registry)).Should().Throw<ArgumentNullException>().WithParameterName("innerClient");
        FluentActions.Invoking(() => new SupervisedChatClient(new FakeChatClient(), null!)).Should().Throw<ArgumentNullException>().WithParameterName("registry");
    }

    [Fact]
    public void Constructor_RunStartOptionsWithSupersede_ThrowsArgumentExceptionPointingToBusyBehavior()
    {
        using var registry = new ActiveRunRegistry();
        var options = new SupervisedChatClientOptions { RunStartOptions = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede } };

        FluentActions.Invoking(() => new SupervisedChatClient(new FakeChatClient(), registry, options))
            .Should().Throw<ArgumentException>().WithMessage("*BusyBehavior*").Which.ParamName.Should().Be("options");
    }

    [Fact]
    public void Constructor_UndefinedBusyBehavior_ThrowsArgumentOutOfRangeException()
    {
        using var registry = new ActiveRunRegistry();
        var options = new SupervisedChatClientOptions { BusyBehavior = (SessionBusyBehavior)7 };

        FluentActions.Invoking(() => new SupervisedChatClient(new FakeChatClient(), registry, options))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*BusyBehavior*");
    }

    [Fact]
    public async Task Constructor_OptionsChangedAfterwards_ClientKeepsOriginalOptions()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start("s1");
        var options = new SupervisedChatClientOptions();
        using var client = new SupervisedChatClient(new FakeChatClient(), f.Registry, options);

        options.BusyBehavior = SessionBusyBehavior.Supersede;

        await FluentActions.Awaiting(() => client.GetResponseAsync(Prompt, Conversation("s1")).Guard()).Should().ThrowAsync<SessionBusyException>();
    }

    [Fact]
    public async Task UseRunSupervisor_WithRegistry_AddsSupervisedClientOutermost()
    {
        using var f = new RegistryFixture();
        var inner = new FakeChatClient { Response = Behaviours.HonoursToken };

        using IChatClient client = new ChatClientBuilder(inner)
            .UseRunSupervisor(f.Registry, o => o.RunStartOptions = new RunStartOptions { Timeout = TimeSpan.FromSeconds(1) })
            .UseFunctionInvocation()
            .Build();

        client.Should().BeOfType<SupervisedChatClient>();
        client.GetService<ActiveRunRegistry>().Should().BeSameAs(f.Registry);
        client.GetService<FunctionInvokingChatClient>().Should().NotBeNull();
        Task<ChatResponse> call = client.GetResponseAsync(Prompt, Conversation("s1"));
        await inner.Called.Guard();
        f.Time.Advance(TimeSpan.FromSeconds(1));
        await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunTimedOutException>("the options callback applied");
    }

    [Fact]
    public async Task UseRunSupervisor_WithoutRegistry_ResolvesRegistryFromServices()
    {
        using ServiceProvider services = new ServiceCollection().AddRunSupervisor().BuildServiceProvider();

        using IChatClient client = new ChatClientBuilder(new FakeChatClient())
            .UseRunSupervisor(o => o.BusyBehavior = SessionBusyBehavior.Supersede)
            .Build(services);

        client.GetService<ActiveRunRegistry>().Should().BeSameAs(services.GetRequiredService<ActiveRunRegistry>());
        (await client.GetResponseAsync(Prompt, Conversation("s1")).Guard()).Text.Should().Be("done");
    }

    [Fact]
    public void UseRunSupervisor_NoRegistryAnywhere_BuildThrowsInvalidOperationException()
    {
        ChatClientBuilder builder = new ChatClientBuilder(new FakeChatClient()).UseRunSupervisor();

        FluentActions.Invoking(() => builder.Build()).Should().Throw<InvalidOperationException>().WithMessage("*AddRunSupervisor*");
    }

    [Fact]
    public void UseRunSupervisor_NullArguments_ThrowArgumentNullException()
    {
        FluentActions.Invoking(() => ((ChatClientBuilder)null!).UseRunSupervisor()).Should().Throw<ArgumentNullException>().WithParameterName("builder");
        FluentActions.Invoking(() => new ChatClientBuilder(new FakeChatClient()).UseRunSupervisor((Action<SupervisedChatClientOptions>)null!))
            .Should().Throw<ArgumentNullException>().WithParameterName("configure");
    }

    [Fact]
    public void Dispose_DisposesInnerClientButNotRegistry()
    {
        using var registry = new ActiveRunRegistry();
        var inner = new FakeChatClient();
        var client = new SupervisedChatClient(inner, registry);

        client.Dispose();

        inner.Disposed.Should().BeTrue();
        registry.IsActive("s1").Should().BeFalse("the registry is still usable");
    }
}
