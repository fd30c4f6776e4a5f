using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Options;

/// <summary>
/// Option defaults, validation (through the registry's constructors and through dependency
/// injection), boundary values, and per-run overrides.
/// </summary>
public sealed class RunSupervisorOptionsTests
{
    /// <summary>The ways options reach validation.</summary>
    public enum Route
    {
        /// <summary><c>new ActiveRunRegistry(options, time, loggerFactory)</c>.</summary>
        ConvenienceConstructor,

        /// <summary><c>new ActiveRunRegistry(IOptions, time, logger)</c>, the constructor DI uses.</summary>
        OptionsConstructor,

        /// <summary><c>AddRunSupervisor(configure)</c>, then <c>IOptions&lt;RunSupervisorOptions&gt;.Value</c>.</summary>
        DependencyInjectionOptionsValue,

        /// <summary><c>AddRunSupervisor(configure)</c>, then resolving the registry.</summary>
        DependencyInjectionRegistry,
    }

    private static readonly TimeSpan TwentyFourDays = TimeSpan.FromDays(24);

    /// <summary>
    /// Each invalid case breaks exactly one rule, named by case, with the fragments its message must contain:
    /// the option's name and its allowed range.
    /// </summary>
    private static readonly Dictionary<string, (Action<RunSupervisorOptions> Apply, string[] MessageParts)> InvalidCases = new()
    {
        ["RunTimeout zero"] = (o => o.RunTimeout = TimeSpan.Zero, ["RunTimeout", "greater than 00:00:00", "at most 24.00:00:00"]),
        ["RunTimeout negative"] = (o => o.RunTimeout = TimeSpan.FromSeconds(-1), ["RunTimeout", "greater than 00:00:00", "at most 24.00:00:00"]),
        ["RunTimeout over 24 days"] = (
            o => { o.RunTimeout = TwentyFourDays + TestTime.Tick; o.MaxRunDuration = TimeSpan.FromDays(30); },
            ["RunTimeout", "greater than 00:00:00", "at most 24.00:00:00"]),
        ["GracePeriod negative"] = (o => o.GracePeriod = -TestTime.Tick, ["GracePeriod", "between 00:00:00 and 24.00:00:00"]),
        ["GracePeriod over 24 days"] = (o => o.GracePeriod = TwentyFourDays + TestTime.Tick, ["GracePeriod", "between 00:00:00 and 24.00:00:00"]),
        ["MaxRunDuration below RunTimeout"] = (
            o => { o.RunTimeout = TimeSpan.FromMinutes(10); o.MaxRunDuration = TimeSpan.FromMinutes(10) - TestTime.Tick; },
            ["MaxRunDuration", "at least RunTimeout (00:10:00)", "at most 365.00:00:00"]),
        ["MaxRunDuration over 365 days"] = (
            o => o.MaxRunDuration = TimeSpan.FromDays(365) + TestTime.Tick,
            ["MaxRunDuration", "at least RunTimeout", "at most 365.00:00:00"]),
        ["MaxRunDuration TimeSpan.MaxValue"] = (
            o => o.MaxRunDuration = TimeSpan.MaxValue,
            ["MaxRunDuration", "at most 365.00:00:00"]),
        ["MaxAbandonedRuns zero"] = (o => o.MaxAbandonedRuns = 0, ["MaxAbandonedRuns", "at least 1"]),
        ["MaxAbandonedRuns negative"] = (o => o.MaxAbandonedRuns = -5, ["MaxAbandonedRuns", "at least 1"]),
        ["WatchdogLatenessThreshold over 24 days"] = (
            o => o.WatchdogLatenessThreshold = TwentyFourDays + TestTime.Tick,
            ["WatchdogLatenessThreshold", "greater than 00:00:00", "at most 24.00:00:00"]),
        ["QueueTimeout over 24 days"] = (o => o.QueueTimeout = TwentyFourDays + TestTime.Tick, ["QueueTimeout", "between 00:00:00 and 24.00:00:00"]),
        ["IdleTimeout over 24 days"] = (o => o.IdleTimeout = TwentyFourDays + TestTime.Tick, ["IdleTimeout", "greater than 00:00:00", "at most 24.00:00:00"]),
        ["Lanes empty name"] = (o => o.Lanes[string.Empty] = 1, ["Lanes", "a lane name must not be empty or white space"]),
        ["Lanes white-space name"] = (o => o.Lanes["  "] = 1, ["Lanes", "a lane name must not be empty or white space"]),
        ["Lanes named default"] = (o => o.Lanes["default"] = 1, ["Lanes", "the lane name 'default' is reserved for the default lane"]),
        ["Lease.LeaseTtl below a second"] = (
            o => ShortLease(o, TimeSpan.FromSeconds(1) - TestTime.Tick),
            ["Lease.LeaseTtl", "between 00:00:01 and 01:00:00"]),
        ["Lease.LeaseTtl over an hour"] = (o => o.Lease.LeaseTtl = TimeSpan.FromHours(1) + TestTime.Tick, ["Lease.LeaseTtl", "between 00:00:01 and 01:00:00"]),
        ["Lease.LeaseSafetyMargin not below the TTL"] = (o => o.Lease.LeaseSafetyMargin = o.Lease.LeaseTtl, ["Lease.LeaseSafetyMargin", "less than LeaseTtl (00:00:15)"]),
        ["Lease.RenewInterval not below half the validity"] = (o => o.Lease.RenewInterval = TimeSpan.FromSeconds(7), ["Lease.RenewInterval", "less than (LeaseTtl - LeaseSafetyMargin) / 2 = 00:00:07"]),
        ["Lease.RenewInterval zero"] = (o => o.Lease.RenewInterval = TimeSpan.Zero, ["Lease.RenewInterval", "greater than 00:00:00"]),
        ["Lease.AcquireTimeout over the TTL"] = (o => o.Lease.AcquireTimeout = TimeSpan.FromSeconds(15) + TestTime.Tick, ["Lease.AcquireTimeout", "at most LeaseTtl (00:00:15)"]),
        ["Lease.AcquireTimeout zero"] = (o => o.Lease.AcquireTimeout = TimeSpan.Zero, ["Lease.AcquireTimeout", "greater than 00:00:00"]),
        ["Lease.RemoteIdlePollInterval over an hour"] = (
            o => o.Lease.RemoteIdlePollInterval = TimeSpan.FromHours(1) + TestTime.Tick,
            ["Lease.RemoteIdlePollInterval", "at most 01:00:00"]),
        ["Lease.RemoteIdlePollInterval zero"] = (o => o.Lease.RemoteIdlePollInterval = TimeSpan.Zero, ["Lease.RemoteIdlePollInterval", "greater than 00:00:00"]),
        ["Lease.OnStoreUnavailable undefined"] = (o => o.Lease.OnStoreUnavailable = (RunSupervisor.Leasing.StoreUnavailableBehavior)7, ["Lease.OnStoreUnavailable", "FailClosed or FailOpen"]),
        ["Lease.HostId white space"] = (o => o.Lease.HostId = "  ", ["Lease.HostId", "1 to 200 characters"]),
        ["Lease.HostId too long"] = (o => o.Lease.HostId = new string('h', 201), ["Lease.HostId", "1 to 200 characters"]),
    };

    private static readonly Dictionary<string, Action<RunSupervisorOptions>> BoundaryCases = new()
    {
        ["RunTimeout one tick"] = o => o.RunTimeout = TestTime.Tick,
        ["RunTimeout exactly 24 days"] = o => { o.RunTimeout = TwentyFourDays; o.MaxRunDuration = TwentyFourDays; },
        ["MaxRunDuration equal to RunTimeout"] = o => { o.RunTimeout = TimeSpan.FromMinutes(5); o.MaxRunDuration = TimeSpan.FromMinutes(5); },
        ["MaxRunDuration exactly 365 days"] = o => o.MaxRunDuration = TimeSpan.FromDays(365),
        ["GracePeriod zero"] = o => o.GracePeriod = TimeSpan.Zero,
        ["GracePeriod exactly 24 days"] = o => o.GracePeriod = TwentyFourDays,
        ["MaxAbandonedRuns one"] = o => o.MaxAbandonedRuns = 1,
        ["Lease.RenewInterval just below half the validity"] = o => o.Lease.RenewInterval = TimeSpan.FromSeconds(7) - TestTime.Tick,
        ["Lease.LeaseSafetyMargin zero"] = o => o.Lease.LeaseSafetyMargin = TimeSpan.Zero,
        ["Lease.AcquireTimeout equal to the TTL"] = o => o.Lease.AcquireTimeout = TimeSpan.FromSeconds(15),
        ["Lease.HostId 200 characters"] = o => o.Lease.HostId = new string('h', 200),
        ["WatchdogLatenessThreshold exactly 24 days"] = o => o.WatchdogLatenessThreshold = TwentyFourDays,
        ["QueueTimeout zero"] = o => o.QueueTimeout = TimeSpan.Zero,
        ["QueueTimeout exactly 24 days"] = o => o.QueueTimeout = TwentyFourDays,
        ["IdleTimeout exactly 24 days"] = o => o.IdleTimeout = TwentyFourDays,
        ["Lease.LeaseTtl exactly a second"] = o => ShortLease(o, TimeSpan.FromSeconds(1)),
        ["Lease.LeaseTtl exactly an hour"] = o => o.Lease.LeaseTtl = TimeSpan.FromHours(1),
        ["Lease.AcquireTimeout one tick"] = o => o.Lease.AcquireTimeout = TestTime.Tick,
        ["Lease.RemoteIdlePollInterval exactly an hour"] = o => o.Lease.RemoteIdlePollInterval = TimeSpan.FromHours(1),
    };

    public static TheoryData<string, Route> InvalidCasesByRoute() => Cross(InvalidCases.Keys);

    public static TheoryData<string, Route> BoundaryCasesByRoute() => Cross(BoundaryCases.Keys);

    public static TheoryData<Route> Routes()
    {
        var data = new TheoryData<Route>();
        foreach (Route route in Enum.GetValues<Route>())
        {
            data.Add(route);
        }

        return data;
    }

    [Fact]
    public void Defaults_MatchDesign()
    {
        var options = new RunSupervisorOptions();

        options.RunTimeout.Should().Be(TimeSpan.FromMinutes(10));
        options.GracePeriod.Should().Be(TimeSpan.FromSeconds(30));
        options.MaxRunDuration.Should().Be(TimeSpan.FromHours(1));
        options.MaxAbandonedRuns.Should().Be(1000);
        RunSupervisorOptions.RunTimeoutLimit.Should().Be(TwentyFourDays);
        RunSupervisorOptions.GracePeriodLimit.Should().Be(TwentyFourDays);
        options.Lease.LeaseTtl.Should().Be(TimeSpan.FromSeconds(15));
        options.Lease.RenewInterval.Should().Be(TimeSpan.FromSeconds(5));
        options.Lease.LeaseSafetyMargin.Should().Be(TimeSpan.FromSeconds(1));
        options.Lease.AcquireTimeout.Should().Be(TimeSpan.FromSeconds(2));
        options.Lease.RemoteIdlePollInterval.Should().Be(TimeSpan.FromSeconds(5));
        options.Lease.OnStoreUnavailable.Should().Be(RunSupervisor.Leasing.StoreUnavailableBehavior.FailClosed);
        options.Lease.HostId.Should().BeNull();
    }

    [Fact]
    public void Constructor_NullOptions_UsesDefaultsForTheDeadline()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(options: null, time);

        using RunHandle run = registry.Start("s1");

        run.Deadline.Should().Be(run.StartedAt + TimeSpan.FromMinutes(10));
        time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(30) - TestTime.Tick);
        registry.IsActive("s1").Should().BeTrue("the default grace period is 30 s");
        time.Advance(TestTime.Tick);
        registry.IsActive("s1").Should().BeFalse();
    }

    [Theory]
    [MemberData(nameof(InvalidCasesByRoute))]
    public void Validation_OneInvalidValue_ThrowsOptionsValidationExceptionNamingOptionAndRange(string invalidCase, Route route)
    {
        (Action<RunSupervisorOptions> apply, string[] parts) = InvalidCases[invalidCase];

        Action create = () => Create(route, apply);

        OptionsValidationException ex = create.Should().Throw<OptionsValidationException>().Which;
        ex.OptionsType.Should().Be<RunSupervisorOptions>();
        string failure = ex.Failures.Should().ContainSingle("each case breaks exactly one rule").Subject;
        failure.Should().ContainAll(parts);
        failure.Should().StartWith("RunSupervisorOptions.", "the message names the option with its type");
        ex.Message.Should().Contain(failure);
    }

    [Theory]
    [MemberData(nameof(BoundaryCasesByRoute))]
    public void Validation_BoundaryValue_Accepted(string boundaryCase, Route route)
    {
        Action<RunSupervisorOptions> apply = BoundaryCases[boundaryCase];

        Action create = () => Create(route, apply);

        create.Should().NotThrow();
    }

    [Theory]
    [MemberData(nameof(Routes))]
    public void Validation_SeveralInvalidValues_AllNamed(Route route)
    {
        Action create = () => Create(route, o =>
        {
            o.RunTimeout = TimeSpan.FromDays(25);
            o.GracePeriod = TimeSpan.FromSeconds(-1);
            o.MaxRunDuration = TimeSpan.FromHours(1);
            o.MaxAbandonedRuns = 0;
        });

        OptionsValidationException ex = create.Should().Throw<OptionsValidationException>().Which;
        ex.Failures.Should().HaveCount(4);
        ex.Message.Should().ContainAll("RunTimeout", "GracePeriod", "MaxRunDuration", "MaxAbandonedRuns");
    }

    [Fact]
    public void Constructor_GraceZero_EvictsAtTheDeadline()
    {
        // GracePeriod 0 is accepted and means "evict at the deadline", not "never".
        var time = new FakeTimeProvider();
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.Zero }, time);
        RunHandle run = registry.Start("s1");

        time.Advance(TimeSpan.FromMinutes(1));

        registry.IsActive("s1").Should().BeFalse();
        run.Status.Should().Be(RunStatus.Evicted);
    }

    [Fact]
    public void Constructor_OptionsMutatedAfterwards_RegistryKeepsTheValuesItWasGiven()
    {
        var options = new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(2) };
        var time = new FakeTimeProvider();
        using var registry = new ActiveRunRegistry(options, time);

        options.RunTimeout = TimeSpan.FromMinutes(30);
        using RunHandle run = registry.Start("s1");

        run.Deadline.Should().Be(run.StartedAt + TimeSpan.FromMinutes(2));
    }

    // ---- Per-run overrides ----

    public static TheoryData<string, TimeSpan?, TimeSpan?, string> InvalidOverrides() => new()
    {
        // registry: RunTimeout 10 min, MaxRunDuration 1 h.
        { "timeout zero", TimeSpan.Zero, null, "RunStartOptions.Timeout" },
        { "timeout negative", TimeSpan.FromSeconds(-1), null, "RunStartOptions.Timeout" },
        { "timeout past MaxRunDuration", TimeSpan.FromHours(1) + TimeSpan.FromTicks(1), null, "RunStartOptions.Timeout" },
        { "grace negative", null, TimeSpan.FromTicks(-1), "RunStartOptions.GracePeriod" },
        { "grace over 24 days", null, TimeSpan.FromDays(24) + TimeSpan.FromTicks(1), "RunStartOptions.GracePeriod" },
    };

    [Theory]
    [MemberData(nameof(InvalidOverrides))]
    public void Start_InvalidPerRunOverride_ThrowsArgumentOutOfRangeNamingOptionsAndStartsNothing(string because, TimeSpan? timeout, TimeSpan? grace, string named)
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(10), MaxRunDuration = TimeSpan.FromHours(1) });
        var overrides = new RunStartOptions { Timeout = timeout, GracePeriod = grace };

        Action start = () => f.Registry.Start("s1", overrides);
        Func<bool> tryStart = () => f.Registry.TryStart("s1", out _, overrides);
        bool providerCalled = false;
        // RunAsync validates before it returns its task: the throw is synchronous, like Start's.
        Action runAsync = () => _ = f.Registry.RunAsync("s1", _ => { providerCalled = true; return Task.FromResult(1); }, overrides);

        start.Should().Throw<ArgumentOutOfRangeException>(because).Which.Should().Match<ArgumentOutOfRangeException>(e => e.ParamName == "options" && e.Message.Contains(named));
        tryStart.Should().Throw<ArgumentOutOfRangeException>(because).Which.ParamName.Should().Be("options");
        runAsync.Should().Throw<ArgumentOutOfRangeException>(because).Which.ParamName.Should().Be("options");

        providerCalled.Should().BeFalse();
        f.Registry.IsActive("s1").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);
        f.LogsWithEvent("RunStarted").Should().BeEmpty();
    }

    [Fact]
    public void Start_PerRunOverridesAtTheirBounds_AcceptedAndApplied()
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(10), MaxRunDuration = TimeSpan.FromHours(1) });

        using RunHandle longest = f.Registry.Start("a", new RunStartOptions { Timeout = TimeSpan.FromHours(1), GracePeriod = TimeSpan.FromDays(24) });
        RunHandle noGrace = f.Registry.Start("b", new RunStartOptions { Timeout = TimeSpan.FromMinutes(1), GracePeriod = TimeSpan.Zero });

        longest.Deadline.Should().Be(longest.StartedAt + TimeSpan.FromHours(1));
        noGrace.Deadline.Should().Be(noGrace.StartedAt + TimeSpan.FromMinutes(1));
        f.Time.Advance(TimeSpan.FromMinutes(1));
        noGrace.Status.Should().Be(RunStatus.Evicted, "a per-run grace period of zero evicts at the run's own deadline");
        longest.Status.Should().Be(RunStatus.Running);
    }

    private static TheoryData<string, Route> Cross(IEnumerable<string> cases)
    {
        var data = new TheoryData<string, Route>();
        foreach (string name in cases)
        {
            foreach (Route route in Enum.GetValues<Route>())
            {
                data.Add(name, route);
            }
        }

        return data;
    }

    /// <summary>
    /// Sets a lease TTL of about a second with the other lease timings shrunk to fit it (no safety margin, renewals
    /// well inside half the TTL, acquisition within it), so only the TTL itself can be out of range.
    /// </summary>
    private static void ShortLease(RunSupervisorOptions options, TimeSpan ttl)
    {
        options.Lease.LeaseTtl = ttl;
        options.Lease.LeaseSafetyMargin = TimeSpan.Zero;
        options.Lease.RenewInterval = TimeSpan.FromMilliseconds(400);
        options.Lease.AcquireTimeout = TimeSpan.FromMilliseconds(500);
    }

    /// <summary>Builds options with <paramref name="apply"/> and pushes them through <paramref name="route"/>.</summary>
    private static void Create(Route route, Action<RunSupervisorOptions> apply)
    {
        var time = new FakeTimeProvider();
        switch (route)
        {
            case Route.ConvenienceConstructor:
            {
                var options = new RunSupervisorOptions();
                apply(options);
                new ActiveRunRegistry(options, time).Dispose();
                break;
            }

            case Route.OptionsConstructor:
            {
                var options = new RunSupervisorOptions();
                apply(options);
                new ActiveRunRegistry(Microsoft.Extensions.Options.Options.Create(options), time, NullLogger<ActiveRunRegistry>.Instance).Dispose();
                break;
            }

            case Route.DependencyInjectionOptionsValue:
            {
                using ServiceProvider sp = new ServiceCollection().AddRunSupervisor(apply).BuildServiceProvider();
                _ = sp.GetRequiredService<IOptions<RunSupervisorOptions>>().Value;
                break;
            }

            case Route.DependencyInjectionRegistry:
            {
                using ServiceProvider sp = new ServiceCollection().AddSingleton<TimeProvider>(time).AddRunSupervisor(apply).BuildServiceProvider();
                _ = sp.GetRequiredService<ActiveRunRegistry>();
                break;
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(route), route, null);
        }
    }

    [Fact]
    public void Validator_NullOptions_ThrowsArgumentNull()
        => FluentActions.Invoking(() => RunSupervisorOptionsValidator.Instance.Validate(null, null!))
            .Should().ThrowExactly<ArgumentNullException>().WithParameterName("options");
}
