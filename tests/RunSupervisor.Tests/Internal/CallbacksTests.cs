using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace RunSupervisor.Tests.Internal;

/// <summary>
/// Where foreign code is called from: a handler, internal listener or guarded call that throws is logged as a failed
/// callback naming itself and the session, and neither the caller nor the other handlers see the exception.
/// </summary>
public sealed class CallbacksTests
{
    private readonly FakeLogger _logger = new();

    [Fact]
    public void Invoke_ListenerThrows_LogsTheListenersTypeAndSessionAndSwallowsIt()
    {
        var failure = new InvalidOperationException("listener bug");
        var listener = new RecordingListener(failure);

        Action invoke = () => Callbacks.Invoke(listener, "s1", sessionIdle: true, _logger);

        invoke.Should().NotThrow();
        listener.Calls.Should().Equal(("s1", true));
        FakeLogRecord log = _logger.Collector.GetSnapshot().Should().ContainSingle().Subject;
        log.Id.Name.Should().Be("CallbackFailed");
        log.Level.Should().Be(LogLevel.Error);
        log.Exception.Should().BeSameAs(failure);
        log.GetStructuredStateValue("Callback").Should().Be(nameof(RecordingListener));
        log.GetStructuredStateValue("SessionId").Should().Be("s1");
    }

    [Fact]
    public void Invoke_ListenerReturns_LogsNothing()
    {
        var listener = new RecordingListener(failure: null);

        Callbacks.Invoke(listener, "s1", sessionIdle: false, _logger);

        listener.Calls.Should().Equal(("s1", false));
        _logger.Collector.Count.Should().Be(0);
    }

    [Fact]
    public void Raise_FirstHandlerThrows_LaterHandlersStillRunAndTheFailureIsLogged()
    {
        var failure = new InvalidOperationException("handler bug");
        var seen = new List<string>();
        EventHandler<string> handlers = (_, _) => throw failure;
        handlers += (_, args) => seen.Add(args);
        object sender = new();

        Callbacks.Raise(handlers, sender, "args", "SomethingHappened", "s2", _logger);

        seen.Should().Equal("args");
        FakeLogRecord log = _logger.Collector.GetSnapshot().Should().ContainSingle().Subject;
        log.Exception.Should().BeSameAs(failure);
        log.GetStructuredStateValue("Callback").Should().Be("SomethingHappened");
        log.GetStructuredStateValue("SessionId").Should().Be("s2");
    }

    [Fact]
    public void Guard_CallThrows_ReturnsTheDefaultAndLogsTheCallbacksName()
    {
        var failure = new InvalidOperationException("listener bug");

        string? result = Callbacks.Guard<int, string>(_ => throw failure, 1, Callbacks.ActivityListener, "s3", _logger);

        result.Should().BeNull();
        FakeLogRecord log = _logger.Collector.GetSnapshot().Should().ContainSingle().Subject;
        log.Exception.Should().BeSameAs(failure);
        log.GetStructuredStateValue("Callback").Should().Be(Callbacks.ActivityListener);
        log.GetStructuredStateValue("SessionId").Should().Be("s3");
    }

    [Fact]
    public void Guard_CallReturns_ReturnsItsResult()
    {
        Callbacks.Guard(static n => n * 2, 21, Callbacks.ActivityListener, "s3", _logger).Should().Be(42);

        _logger.Collector.Count.Should().Be(0);
    }

    private sealed class RecordingListener(Exception? failure) : IRunEndListener
    {
        public List<(string SessionId, bool SessionIdle)> Calls { get; } = [];

        public void OnRunEnded(string sessionId, bool sessionIdle)
        {
            Calls.Add((sessionId, sessionIdle));
            if (failure is not null)
            {
                throw failure;
            }
        }
    }
}
