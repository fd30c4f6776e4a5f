using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary><see cref="ActiveRunRegistry.StartAsync(string, RunStartOptions?, CancellationToken)"/>: the start an async host awaits.</summary>
/// <remarks>Its allocation budgets are measured on a quiet process (see <see cref="AllocationMeasurementCollection"/>).</remarks>
[Collection(AllocationMeasurementCollection.Name)]
public sealed class ActiveRunRegistryStartAsyncTests
{
    private const string Session = "s1";

    [Fact]
    public async Task StartAsync_IdleSession_CompletesSynchronouslyWithARunningHandle()
    {
        using var f = new RegistryFixture();

        ValueTask<RunHandle> start = f.Registry.StartAsync(Session);

        start.IsCompletedSuccessfully.Should().BeTrue();
        RunHandle run = await start;
        run.Status.Should().Be(RunStatus.Running);
        run.IsCurrent.Should().BeTrue();
        f.Registry.IsActive(Session).Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_BusySession_FailsThroughTheTaskWithSessionBusyException()
    {
        using var f = new RegistryFixture();
        using RunHandle current = f.Registry.Start(Session);

        ValueTask<RunHandle> start = f.Registry.StartAsync(Session);

        start.IsFaulted.Should().BeTrue();
        (await FluentActions.Awaiting(async () => await start).Should().ThrowAsync<SessionBusyException>())
            .Which.RunId.Should().Be(current.RunId);
        f.Registry.ActiveCount.Should().Be(1);
    }

    [Fact]
    public async Task StartAsync_Supersede_ReplacesTheActiveRun()
    {
        using var f = new RegistryFixture();
        RunHandle old = f.Registry.Start(Session);

        using RunHandle replacement = await f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede });

        old.Status.Should().Be(RunStatus.Ended);
        (await old.Completion).Should().Be(RunEndReason.Superseded);
        replacement.IsCurrent.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_CancelledToken_NeverStartsTheRun()
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        ValueTask<RunHandle> start = f.Registry.StartAsync(Session, cancellationToken: cts.Token);

        (await FluentActions.Awaiting(async () => await start).Should().ThrowAsync<OperationCanceledException>())
            .Which.CancellationToken.Should().Be(cts.Token);
        f.Registry.IsActive(Session).Should().BeFalse();
    }

    [Fact]
    public void StartAsync_InvalidArguments_ThrowSynchronously()
    {
        using var f = new RegistryFixture();

        FluentActions.Invoking(() => f.Registry.StartAsync(null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("sessionId");
        FluentActions.Invoking(() => f.Registry.StartAsync(" ")).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("sessionId");
        FluentActions.Invoking(() => f.Registry.StartAsync(Session, new RunStartOptions { Timeout = TimeSpan.Zero }))
            .Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("options");
        FluentActions.Invoking(() => f.Registry.StartAsync(Session, new RunStartOptions { WhenBusy = (SessionBusyBehavior)42 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RunStartOptions.WhenBusy*");
    }

    [Fact]
    public void StartAsync_DisposedRegistry_ThrowsObjectDisposedException()
    {
        var f = new RegistryFixture();
        f.Dispose();

        FluentActions.Invoking(() => f.Registry.StartAsync(Session)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void StartAsyncAndRelease_IdleSession_AllocatesNoMoreThanStartAndRelease()
    {
        using var registry = new ActiveRunRegistry();

        // Warm both paths (JIT, the session table's first slots), then measure each on this thread alone.
        for (int i = 0; i < 100; i++)
        {
            registry.Start(Session).Dispose();
            StartAsyncAndRelease(registry);
        }

        long sync = AllocatedPerRun(() => registry.Start(Session).Dispose());
        long async = AllocatedPerRun(() => StartAsyncAndRelease(registry));

        async.Should().Be(sync, "an admitted StartAsync completes synchronously around the same handle");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StartAndRelease_IdleSession_AllocatesAtMost216Bytes(bool lanesConfigured)
    {
        // The run's record and its ticket, nothing else: the budget of a bare dictionary-and-timer start, which lanes
        // and a global cap that nothing contends for must not raise.
        using var registry = lanesConfigured
            ? new ActiveRunRegistry(new RunSupervisorOptions { MaxActiveRuns = 1000, Lanes = { ["batch"] = 10 } })
            : new ActiveRunRegistry();
        for (int i = 0; i < 100; i++)
        {
            registry.Start(Session).Dispose();
        }

        AllocatedPerRun(() => registry.Start(Session).Dispose()).Should().BeLessThanOrEqualTo(216);
    }

    [Fact]
    public void StartAsync_BusySessionHandsOffToItsWaiterAgainAndAgain_AllocatesAtMost505BytesPerHandOff()
    {
        // The waiting start (its queue links included), its task, and the run it becomes with its ticket: the session's
        // queue and its map entry are made for its first waiter and kept, not made again for each hand-off.
        using var registry = new ActiveRunRegistry();
        var wait = new RunStartOptions { WhenBusy = SessionBusyBehavior.Wait };
        RunHandle current = registry.Start(Session);
        for (int i = 0; i < 100; i++)
        {
            current = HandOff(registry, current, wait);
        }

        AllocatedPerRun(() => current = HandOff(registry, current, wait)).Should().BeLessThanOrEqualTo(505);
        current.Dispose();
    }

    private static RunHandle HandOff(ActiveRunRegistry registry, RunHandle current, RunStartOptions wait)
    {
        ValueTask<RunHandle> waiter = registry.StartAsync(Session, wait);
        current.Dispose();
        if (!waiter.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("The release admits the waiter before it returns.");
        }

        return waiter.GetAwaiter().GetResult();
    }

    /// <summary>Consumes the start as a synchronous caller would; it has completed, so nothing blocks.</summary>
    private static void StartAsyncAndRelease(ActiveRunRegistry registry)
    {
        ValueTask<RunHandle> start = registry.StartAsync(Session);
        if (!start.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("An admitted start must complete synchronously.");
        }

        start.GetAwaiter().GetResult().Dispose();
    }

    private static long AllocatedPerRun(Action startAndRelease)
    {
        const int Runs = 1000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Runs; i++)
        {
            startAndRelease();
        }

        return (GC.GetAllocatedBytesForCurrentThread() - before) / Runs;
    }
}
