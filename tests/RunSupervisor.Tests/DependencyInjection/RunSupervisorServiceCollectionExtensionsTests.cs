using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace RunSupervisor.Tests.DependencyInjection;

/// <summary>
/// <c>services.AddRunSupervisor(...)</c>: singletons, options reaching behaviour, the TimeProvider fallback,
/// idempotence, argument checks.
/// </summary>
public sealed class RunSupervisorServiceCollectionExtensionsTests
{
    [Fact]
    public void AddRunSupervisor_Resolved_RegistryAndPolicyAreSingletonsWiredTogether()
    {
        var services = new ServiceCollection();

        services.AddRunSupervisor().Should().BeSameAs(services);

        services.Should().ContainSingle(d => d.ServiceType == typeof(ActiveRunRegistry)).Which.Lifetime.Should().Be(ServiceLifetime.Singleton);
        services.Should().ContainSingle(d => d.ServiceType == typeof(HeartbeatQueuePolicy)).Which.Lifetime.Should().Be(ServiceLifetime.Singleton);

        using ServiceProvider sp = services.BuildServiceProvider();
        using IServiceScope scope = sp.CreateScope();
        var registry = sp.GetRequiredService<ActiveRunRegistry>();
        var policy = sp.GetRequiredService<HeartbeatQueuePolicy>();
        scope.ServiceProvider.GetRequiredService<ActiveRunRegistry>().Should().BeSameAs(registry);
        scope.ServiceProvider.GetRequiredService<HeartbeatQueuePolicy>().Should().BeSameAs(policy);

        // The policy consults (and listens to) that very registry.
        var owed = new List<int>();
        policy.HeartbeatOwed += (_, e) => owed.Add(e.DroppedHeartbeats);
        RunHandle run = registry.Start("s1");
        policy.Resolve(new QueueRequest("s1", IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);
        run.Dispose();
        owed.Should().Equal(1);
    }

    [Fact]
    public void AddRunSupervisor_ConfigureCallback_ReachesRegistryBehaviour()
    {
        var time = new FakeTimeProvider();
        using ServiceProvider sp = new ServiceCollection()
            .AddSingleton<TimeProvider>(time)
            .AddRunSupervisor(o =>
            {
                o.RunTimeout = TimeSpan.FromMinutes(2);
                o.GracePeriod = TimeSpan.FromSeconds(5);
                o.MaxRunDuration = TimeSpan.FromMinutes(3);
            })
            .BuildServiceProvider();
        var registry = sp.GetRequiredService<ActiveRunRegistry>();
        RunHandle run = registry.Start("s1");

        run.Deadline.Should().Be(run.StartedAt + TimeSpan.FromMinutes(2));
        run.TryExtendDeadline(TimeSpan.FromMinutes(1)).Should().BeTrue();
        run.TryExtendDeadline(TimeSpan.FromTicks(1)).Should().BeFalse("MaxRunDuration of 3 min is the hard cap");

        time.Advance(TimeSpan.FromMinutes(3));
        run.Status.Should().Be(RunStatus.Aborting);
        time.Advance(TimeSpan.FromSeconds(5));
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public void AddRunSupervisor_NoTimeProviderRegistered_UsesSystem()
    {
        using ServiceProvider sp = new ServiceCollection().AddRunSupervisor().BuildServiceProvider();

        sp.GetRequiredService<TimeProvider>().Should().BeSameAs(TimeProvider.System);
        sp.GetRequiredService<ActiveRunRegistry>().TimeProvider.Should().BeSameAs(TimeProvider.System);
    }

    [Fact]
    public void AddRunSupervisor_FakeTimeProviderRegisteredFirst_RegistryRunsOnIt()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection().AddSingleton<TimeProvider>(time);

        services.AddRunSupervisor();

        services.Should().ContainSingle(d => d.ServiceType == typeof(TimeProvider), "the fallback must not be added next to the host's");
        using ServiceProvider sp = services.BuildServiceProvider();
        var registry = sp.GetRequiredService<ActiveRunRegistry>();
        RunHandle run = registry.Start("s1");
        run.StartedAt.Should().Be(time.GetUtcNow());

        // Proof by behaviour: the default 10 min deadline fires when (and only when) the fake clock gets there.
        time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromTicks(1));
        run.AbortToken.IsCancellationRequested.Should().BeFalse();
        time.Advance(TimeSpan.FromTicks(1));
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        run.Status.Should().Be(RunStatus.Aborting);
    }

    [Fact]
    public void AddRunSupervisor_CalledTwice_RegistersNothingTwice()
    {
        var services = new ServiceCollection();

        services.AddRunSupervisor();
        services.AddRunSupervisor(o => o.MaxAbandonedRuns = 7);
        services.AddRunSupervisor();

        services.Count(d => d.ServiceType == typeof(IValidateOptions<RunSupervisorOptions>)).Should().Be(1);
        services.Count(d => d.ServiceType == typeof(ActiveRunRegistry)).Should().Be(1);
        services.Count(d => d.ServiceType == typeof(HeartbeatQueuePolicy)).Should().Be(1);
        services.Count(d => d.ServiceType == typeof(TimeProvider)).Should().Be(1);
        using ServiceProvider sp = services.BuildServiceProvider();
        sp.GetServices<IValidateOptions<RunSupervisorOptions>>().Should().ContainSingle();
        sp.GetRequiredService<IOptions<RunSupervisorOptions>>().Value.MaxAbandonedRuns.Should().Be(7, "configure callbacks still apply");
    }

    [Fact]
    public void AddRunSupervisor_TwoConfigureCallbacks_AppliedInOrder()
    {
        using ServiceProvider sp = new ServiceCollection()
            .AddRunSupervisor(o => { o.RunTimeout = TimeSpan.FromMinutes(1); o.GracePeriod = TimeSpan.FromSeconds(1); })
            .AddRunSupervisor(o => o.GracePeriod = TimeSpan.FromSeconds(2))
            .BuildServiceProvider();

        RunSupervisorOptions options = sp.GetRequiredService<IOptions<RunSupervisorOptions>>().Value;

        options.RunTimeout.Should().Be(TimeSpan.FromMinutes(1));
        options.GracePeriod.Should().Be(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void AddRunSupervisor_NullServices_ThrowsArgumentNull()
    {
        Action plain = () => RunSupervisorServiceCollectionExtensions.AddRunSupervisor(null!);
        Action configured = () => RunSupervisorServiceCollectionExtensions.AddRunSupervisor(null!, _ => { });

        plain.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("services");
        configured.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("services");
    }

    [Fact]
    public void AddRunSupervisor_NullServicesAndNullConfigure_NamesServices()
    {
        // The arguments are checked in order, so the first missing one is the one reported.
        Action configured = () => RunSupervisorServiceCollectionExtensions.AddRunSupervisor(null!, null!);

        configured.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("services");
    }

    [Fact]
    public void AddRunSupervisor_NullConfigure_ThrowsArgumentNullAndRegistersNothing()
    {
        var services = new ServiceCollection();

        Action add = () => services.AddRunSupervisor(null!);

        add.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("configure");
        services.Should().BeEmpty();
    }

    [Fact]
    public void AddRunSupervisor_LoggingRegistered_RegistryAndPolicyLogThroughIt()
    {
        var time = new FakeTimeProvider();
        using ServiceProvider sp = new ServiceCollection()
            .AddFakeLogging()
            .AddSingleton<TimeProvider>(time)
            .AddRunSupervisor()
            .BuildServiceProvider();
        var registry = sp.GetRequiredService<ActiveRunRegistry>();
        var policy = sp.GetRequiredService<HeartbeatQueuePolicy>();
        registry.Start("s1");
        policy.Resolve(new QueueRequest("s1", IsHeartbeat: true));

        time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(30));

        FakeLogCollector logs = sp.GetFakeLogCollector();
        logs.GetSnapshot().Select(r => (r.Category, r.Id.Name)).Should().Contain(
        [
            (typeof(HeartbeatQueuePolicy).FullName, "HeartbeatDropped"),
            (typeof(ActiveRunRegistry).FullName, "RunForceEvicted"),
            (typeof(HeartbeatQueuePolicy).FullName, "HeartbeatOwed"),
        ]);
    }

    [Fact]
    public async Task ServiceProviderDispose_EndsRunsAndDisposesRegistry()
    {
        var time = new FakeTimeProvider();
        ServiceProvider sp = new ServiceCollection().AddSingleton<TimeProvider>(time).AddRunSupervisor().BuildServiceProvider();
        var registry = sp.GetRequiredService<ActiveRunRegistry>();
        RunHandle run = registry.Start("s1");

        sp.Dispose();

        run.Completion.IsCompleted.Should().BeTrue();
        (await run.Completion).Should().Be(RunEndReason.Aborted);
        FluentActions.Invoking(() => registry.IsActive("s1")).Should().Throw<ObjectDisposedException>();
    }
}
