using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary><see cref="RunSupervisorOptions.MaxQueuedPerSession"/> and <see cref="RunSupervisorOptions.QueueOverflow"/>.</summary>
public sealed class QueueOverflowTests
{
    private const string Session = "s1";
    private static readonly RunStartOptions Wait = new() { WhenBusy = SessionBusyBehavior.Wait };

    [Fact]
    public async Task StartAsync_QueueFullWithRejectNewest_NewStartFailsAndTheWaitersKeepTheirPlaces()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { MaxQueuedPerSession = 2 });
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> a = f.Registry.StartAsync(Session, Wait);
        ValueTask<RunHandle> b = f.Registry.StartAsync(Session, Wait);

        ValueTask<RunHandle> c = f.Registry.StartAsync(Session, Wait);

        c.IsFaulted.Should().BeTrue();
        RunQueueFullException error = (await FluentActions.Awaiting(async () => await c).Should().ThrowAsync<RunQueueFullException>()).Which;
        error.Limit.Should().Be(2);
        error.SessionId.Should().Be(Session);
        error.Message.Should().Contain("MaxQueuedPerSession");
        f.Registry.GetQueuedCount(Session).Should().Be(2);
        f.LogsWithEvent("QueueFull").Should().ContainSingle();
        current.Dispose();
        (await a).Dispose();
        (await b).Dispose();
    }

    [Fact]
    public async Task StartAsync_QueueFullWithCancelOldest_OldestWaiterFailsAndTheNewOneQueues()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { MaxQueuedPerSession = 2, QueueOverflow = QueueOverflowBehavior.CancelOldest });
        RunHandle current = f.Registry.Start(Session);
        ValueTask<RunHandle> a = f.Registry.StartAsync(Session, Wait);
        ValueTask<RunHandle> b = f.Registry.StartAsync(Session, Wait);

        ValueTask<RunHandle> c = f.Registry.StartAsync(Session, Wait);

        (await FluentActions.Awaiting(async () => await a).Should().ThrowAsync<RunQueueFullException>()).Which.Message.Should().Contain("CancelOldest");
        c.IsCompleted.Should().BeFalse();
        f.Registry.GetQueuedCount(Session).Should().Be(2);
        current.Dispose();
        RunHandle second = await b;
        second.Dispose();
        (await c).Dispose();
    }

    [Fact]
    public void Options_InvalidQueueSettings_FailValidationNamingTheOption()
    {
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { MaxQueuedPerSession = 0 }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*MaxQueuedPerSession*");
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { QueueTimeout = TimeSpan.FromSeconds(-1) }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*QueueTimeout*");
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { QueueOverflow = (QueueOverflowBehavior)7 }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*QueueOverflow*");
        FluentActions.Invoking(() => new ActiveRunRegistry(new RunSupervisorOptions { MaxActiveRuns = -1 }))
            .Should().Throw<Microsoft.Extensions.Options.OptionsValidationException>().WithMessage("*MaxActiveRuns*");
    }

    [Fact]
    public void StartAsync_NegativePerStartQueueTimeout_ThrowsArgumentOutOfRange()
    {
        using var f = new RegistryFixture();

        FluentActions.Invoking(() => f.Registry.StartAsync(Session, new RunStartOptions { QueueTimeout = TimeSpan.FromSeconds(-1) }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RunStartOptions.QueueTimeout*");
    }
}
