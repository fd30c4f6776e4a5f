using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using RunSupervisor.Extensions.AI.Tests.TestSupport;
using static RunSupervisor.Extensions.AI.Tests.TestSupport.TestHelpers;

namespace RunSupervisor.Extensions.AI.Tests.ChatClients;

/// <summary>Unsupervised calls are never a silent surprise: counted on the meter "RunSupervisor" and logged.</summary>
public sealed class SupervisedChatClientObservabilityTests
{
    [Fact]
    public async Task UnsupervisedCalls_NoSessionId_CountedWithStreamingTag()
    {
        using var f = new RegistryFixture();
        using SupervisedChatClient client = f.Client(new FakeChatClient());
        using var collector = new MetricCollector<long>(client.Metrics.UnsupervisedCalls);

        await client.GetResponseAsync(Prompt).Guard();
        await ConsumeAsync(client.GetStreamingResponseAsync(Prompt, new ChatOptions())).Guard();
        await client.GetResponseAsync(Prompt, Conversation("supervised")).Guard();

        collector.GetMeasurementSnapshot().Select(static m => (m.Value, m.Tags["runsupervisor.chat.streaming"]))
            .Should().Equal((1L, (object?)false), (1L, (object?)true));
        client.Metrics.UnsupervisedCalls.Meter.Name.Should().Be("RunSupervisor");
        client.Metrics.UnsupervisedCalls.Name.Should().Be("runsupervisor.chat.unsupervised_calls");
    }

    [Fact]
    public async Task UnsupervisedCalls_NoSessionId_LoggedAtDebugWithStableEventId()
    {
        using var f = new RegistryFixture();
        var logs = new RecordingLoggerFactory();
        using SupervisedChatClient client = f.Client(new FakeChatClient(), o => o.SessionIdSelector = static (_, _) => null, logs);

        await client.GetResponseAsync(Prompt, Conversation("ignored-by-selector")).Guard();

        logs.Lines.Should().ContainSingle().Which.Should().Match<(LogLevel Level, string EventName, string Message)>(l =>
            l.Level == LogLevel.Debug
            && l.EventName == "UnsupervisedChatCall"
            && l.Message.Contains("GetResponseAsync", StringComparison.Ordinal)
            && l.Message.Contains("SessionIdSelector", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SupervisedCalls_WithSessionId_NotCountedNorLogged()
    {
        using var f = new RegistryFixture();
        var logs = new RecordingLoggerFactory();
        using SupervisedChatClient client = f.Client(new FakeChatClient(), loggerFactory: logs);
        using var collector = new MetricCollector<long>(client.Metrics.UnsupervisedCalls);

        await client.GetResponseAsync(Prompt, Conversation("s1")).Guard();

        collector.GetMeasurementSnapshot().Should().BeEmpty();
        logs.Lines.Should().BeEmpty();
    }
}
