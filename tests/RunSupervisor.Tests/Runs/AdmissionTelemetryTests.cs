using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// What a waiting start reports: the RunQueued line when it starts to wait, how long it waited (measured from when it
/// was queued, not from when the registry was created), the QueueFull line naming its lane, and the message of the
/// exception a cancelled wait fails with.
/// </summary>
public sealed class AdmissionTelemetryTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait };

    [Fact]
    public async Task StartAsync_StartWaits_LogsRunQueuedWithTheLaneAndTheSessionsQueueLength()
    {
        using var f = new RegistryFixture();
        RunHandle current = f.Registry.Start(Session);

        ValueTask<RunHandle> first = f.Registry.StartAsync(Session, Wait);
        ValueTask<RunHandle> second = f.Registry.StartAsync(Session, Wait);

        FakeLogRecord[] lines = f.LogsWithEvent("RunQueued").ToArray();
        lines.Select(r => r.Id.Id).Should().Equal(17, 17);
        lines.Select(r => (r.GetStructuredStateValue("SessionId"), r.GetStructuredStateValue("Lane"), r.GetStructuredStateValue("Queued")))
            .Should().Equal((Session, "default", "1"), (Session, "default", "2"));
        current.Dispose();
        (await first).Dispose();
        (await second).Dispose();
    }

    [Fact]
    public async Task StartAsync_AdmittedAfterWaiting_ReportsTheTimeSinceItWasQueued()
    {
        using var f = new RegistryFixture();
        using var wait = new MetricCollector<double>(f.Registry.Metrics.QueueWait);

        // Queued well after the registry's clock origin, so the wait cannot be mistaken for an absolute instant.
        f.Time.Advance(TimeSpan.FromSeconds(3));
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait);
        f.Time.Advance(TimeSpan.FromSeconds(5));
        current.Dispose();
        using RunHandle admitted = await waiting;

        wait.GetMeasurementSnapshot().Should().ContainSingle().Which.Value.Should().Be(5.0);
        f.LogsWithEvent("RunAdmitted").Should().ContainSingle().Which.GetStructuredStateValue("Waited").Should().Be(TimeSpan.FromSeconds(5).ToString());
    }

    [Fact]
    public async Task StartAsync_TimedOutAfterWaiting_LogsTheTimeSinceItWasQueued()
    {
        using var f = new RegistryFixture();
        f.Time.Advance(TimeSpan.FromSeconds(3));
        using RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, QueueTimeout = TimeSpan.FromSeconds(4) });

        f.Time.Advance(TimeSpan.FromSeconds(4));

        await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<RunQueueTimeoutException>();
        f.LogsWithEvent("QueueTimedOut").Should().ContainSingle().Which.GetStructuredStateValue("Waited").Should().Be(TimeSpan.FromSeconds(4).ToString());
    }

    [Fact]
    public async Task StartAsync_CancelledWhileWaiting_FailsWithAMessageSayingItNeverRan()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        ValueTask<RunHandle> waiting = f.Registry.StartAsync(Session, Wait, cts.Token);

        cts.Cancel();

        OperationCanceledException error = (await FluentActions.Awaiting(async () => await waiting).Should().ThrowAsync<OperationCanceledException>()).Which;
        error.Message.Should().Be("The start was cancelled while it waited for admission; it never ran.");
        error.CancellationToken.Should().Be(cts.Token);
    }

    [Fact]
    public async Task StartAsync_WaiterPushedOutByANewerOne_LogsQueueFullWithItsLaneAndTheLimit()
    {
        var options = new RunSupervisorOptions { MaxQueuedPerSession = 1, QueueOverflow = QueueOverflowBehavior.CancelOldest };
        options.Lanes["cron"] = 4;
        using var f = new RegistryFixture(options);
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> oldest = f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, Lane = "cron" });

        ValueTask<RunHandle> newest = f.Registry.StartAsync(Session, Wait);

        await FluentActions.Awaiting(async () => await oldest).Should().ThrowAsync<RunQueueFullException>();
        FakeLogRecord line = f.LogsWithEvent("QueueFull").Should().ContainSingle().Subject;
        line.Id.Id.Should().Be(20);
        line.GetStructuredStateValue("SessionId").Should().Be(Session);
        line.GetStructuredStateValue("Lane").Should().Be("cron", "the line names the lane of the start that was pushed out");
        line.GetStructuredStateValue("Limit").Should().Be("1");
        current.Dispose();
        (await newest).Dispose();
    }

    [Fact]
    public async Task StartAsync_SessionQueueFullInANamedLane_LogsQueueFullWithThatLane()
    {
        var options = new RunSupervisorOptions { MaxQueuedPerSession = 1 };
        options.Lanes["cron"] = 4;
        using var f = new RegistryFixture(options);
        var cron = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait, Lane = "cron" };
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> queued = f.Registry.StartAsync(Session, cron);

        ValueTask<RunHandle> refused = f.Registry.StartAsync(Session, cron);

        (await FluentActions.Awaiting(async () => await refused).Should().ThrowAsync<RunQueueFullException>()).Which.Lane.Should().Be("cron");
        FakeLogRecord line = f.LogsWithEvent("QueueFull").Should().ContainSingle().Subject;
        line.GetStructuredStateValue("Lane").Should().Be("cron");
        line.GetStructuredStateValue("Limit").Should().Be("1");
        current.Dispose();
        (await queued).Dispose();
    }
}
