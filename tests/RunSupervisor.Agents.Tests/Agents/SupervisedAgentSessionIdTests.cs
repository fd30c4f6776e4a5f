using System.Text.Json;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using RunSupervisor.Agents;

namespace RunSupervisor.Agents.Tests.Agents;

/// <summary>Which session a turn belongs to: the id kept in the session's state, a selector, or none (unsupervised).</summary>
public sealed class SupervisedAgentSessionIdTests
{
    [Fact]
    public async Task GetSessionId_FirstUse_CreatesAnIdAndReturnsTheSameOneAfterwards()
    {
        AgentSession session = await new FakeAgent().CreateSessionAsync();

        string id = SupervisedAgent.GetSessionId(session);

        id.Should().NotBeNullOrWhiteSpace().And.HaveLength(32);
        SupervisedAgent.GetSessionId(session).Should().Be(id);
        SupervisedAgent.GetSessionId(await new FakeAgent().CreateSessionAsync()).Should().NotBe(id, "each session has its own id");
    }

    [Fact]
    public async Task GetSessionId_ConcurrentFirstUse_EveryCallerGetsOneId()
    {
        AgentSession session = await new FakeAgent().CreateSessionAsync();
        using var start = new Barrier(4);

        string[] ids = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait();
            return SupervisedAgent.GetSessionId(session);
        }))).Guard();

        ids.Distinct().Should().ContainSingle();
    }

    [Fact]
    public async Task RunAsync_SessionSerializedAndRestored_TheRestoredSessionIsTheSameRegistrySession()
    {
        using var f = new AgentFixture();
        SupervisedAgent agent = f.Agent(new FakeAgent());
        AgentSession session = await agent.CreateSessionAsync();
        await agent.RunAsync("first", session).Guard();
        string id = f.Ended.Should().ContainSingle().Which.SessionId;

        JsonElement saved = await agent.SerializeSessionAsync(session);
        AgentSession restored = await agent.DeserializeSessionAsync(JsonDocument.Parse(saved.GetRawText()).RootElement);
        await agent.RunAsync("second", restored).Guard();

        id.Should().Be(SupervisedAgent.GetSessionId(session));
        SupervisedAgent.GetSessionId(restored).Should().Be(id);
        f.Ended.Select(e => e.SessionId).Should().Equal(id, id);
    }

    [Fact]
    public async Task RunAsync_SelectorSet_ItAloneDecidesTheSession()
    {
        using var f = new AgentFixture();
        SupervisedAgent agent = f.Agent(new FakeAgent(), o => o.SessionIdSelector = (_, options) => options?.AdditionalProperties?["user"] as string);

        await agent.RunAsync("hi", session: null, new AgentRunOptions { AdditionalProperties = new() { ["user"] = "user-7" } }).Guard();

        f.Ended.Should().ContainSingle().Which.SessionId.Should().Be("user-7");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public async Task RunAsync_SelectorReturnsAnInvalidId_ThrowsArgumentExceptionNamingTheSelector(string id)
    {
        using var f = new AgentFixture();
        var inner = new FakeAgent();
        SupervisedAgent agent = f.Agent(inner, o => o.SessionIdSelector = (_, _) => id);

        (await FluentActions.Awaiting(() => agent.RunAsync("hi").Guard()).Should().ThrowAsync<ArgumentException>().WithMessage("*SessionIdSelector*"))
            .Which.ParamName.Should().Be("session");
        await FluentActions.Awaiting(() => ConsumeAsync(agent.RunStreamingAsync("hi")).Guard()).Should().ThrowAsync<ArgumentException>();
        inner.Calls.Should().Be(0);
    }

    [Fact]
    public async Task RunAsync_SelectorReturnsAnIdTooLong_ThrowsArgumentException()
    {
        using var f = new AgentFixture();
        SupervisedAgent agent = f.Agent(new FakeAgent(), o => o.SessionIdSelector = (_, _) => new string('x', ActiveRunRegistry.MaxSessionIdLength + 1));

        await FluentActions.Awaiting(() => agent.RunAsync("hi").Guard()).Should().ThrowAsync<ArgumentException>();
    }

    [Fact]
    public async Task RunAsync_NoSession_PassesThroughUnsupervisedCountedAndLogged()
    {
        using var f = new AgentFixture();
        var inner = new FakeAgent();
        SupervisedAgent agent = f.Agent(inner);
        using var unsupervised = new MetricCollector<long>(agent.Metrics.UnsupervisedRuns);

        AgentResponse response = await agent.RunAsync("hi").Guard();
        await ConsumeAsync(agent.RunStreamingAsync("hi")).Guard();

        response.Text.Should().Be("done");
        inner.Calls.Should().Be(2);
        inner.SeenContext.Should().BeNull("an unsupervised turn has no run");
        f.Ended.Should().BeEmpty();
        unsupervised.GetMeasurementSnapshot().Select(m => (m.Value, m.Tags[SupervisedAgentMetrics.StreamingTag]))
            .Should().Equal((1L, (object?)false), (1L, (object?)true));
        f.Logs.Lines.Where(l => l.EventName == "UnsupervisedAgentRun").Should().HaveCount(2)
            .And.OnlyContain(l => l.Level == LogLevel.Debug && l.Message.Contains("AgentSession", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_SelectorReturnsNull_PassesThroughUnsupervisedAndSaysWhy()
    {
        using var f = new AgentFixture();
        SupervisedAgent agent = f.Agent(new FakeAgent(), o => o.SessionIdSelector = (_, _) => null);
        using var unsupervised = new MetricCollector<long>(agent.Metrics.UnsupervisedRuns);

        await agent.RunAsync("hi", await agent.CreateSessionAsync()).Guard();

        unsupervised.GetMeasurementSnapshot().Should().ContainSingle();
        f.Logs.Lines.Should().Contain(l => l.EventName == "UnsupervisedAgentRun" && l.Message.Contains("SessionIdSelector", StringComparison.Ordinal));
    }
    [Fact]
    public async Task CreateSessionAsync_SavedBeforeItsFirstTurnAndRestoredTwice_BothCopiesAreOneRegistrySession()
    {
        // A host creates the conversation and stores it; each request restores it from the store.
        using var f = new AgentFixture();
        int turns = 0;
        var inner = new FakeAgent
        {
            Turn = ct => Interlocked.Increment(ref turns) == 1 ? AgentBehaviours.HonoursToken(ct) : Task.FromResult(AgentBehaviours.Reply("second turn ran")),
        };
        SupervisedAgent agent = f.Agent(inner);
        AgentSession created = await agent.CreateSessionAsync();
        string stored = (await agent.SerializeSessionAsync(created)).GetRawText();
        AgentSession requestA = await agent.DeserializeSessionAsync(JsonDocument.Parse(stored).RootElement);
        AgentSession requestB = await agent.DeserializeSessionAsync(JsonDocument.Parse(stored).RootElement);

        Task<AgentResponse> first = agent.RunAsync("one", requestA);
        await inner.Called.Guard();

        await FluentActions.Awaiting(() => agent.RunAsync("two", requestB).Guard())
            .Should().ThrowAsync<SessionBusyException>("both requests restored the same session");
        SupervisedAgent.GetSessionId(requestB).Should().Be(SupervisedAgent.GetSessionId(requestA)).And.Be(SupervisedAgent.GetSessionId(created));
        inner.Calls.Should().Be(1);
        first.IsCompleted.Should().BeFalse();
        f.Registry.TryAbort(SupervisedAgent.GetSessionId(created)).Should().BeTrue();
        await FluentActions.Awaiting(() => first.Guard()).Should().ThrowAsync<Exception>();
    }
}
