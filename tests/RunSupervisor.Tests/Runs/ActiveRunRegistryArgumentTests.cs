using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Runs;

/// <summary>
/// Bad input to the registry: session ids, per-run overrides (<see cref="RunStartOptions"/>) and constructor
/// arguments, each rejected with an exception that names what was wrong.
/// </summary>
public sealed class ActiveRunRegistryArgumentTests
{

    // Every public member that takes a session id.
    private static readonly string[] MembersTakingSessionId =
        ["Start", "TryStart", "IsActive", "TryGetRun", "TryAbort", "WaitForRunEndAsync", "RunAsync<T>", "RunAsync"];

    public static TheoryData<string> SessionIdMembers => new(MembersTakingSessionId);

    public static TheoryData<string, string> SessionIdMembersWithBadIds
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (string member in MembersTakingSessionId)
            {
                foreach (string kind in new[] { "empty", "space", "tab-newline", "257 chars" })
                {
                    data.Add(member, kind);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(SessionIdMembers))]
    public void SessionIdMember_NullSessionId_ThrowsArgumentNullNamingSessionId(string member)
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => RegistryMemberCalls.CallWithSessionId(r, member, null!))
            .Should().ThrowExactly<ArgumentNullException>()
            .Which.ParamName.Should().Be("sessionId");
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(SessionIdMembersWithBadIds))]
    public void SessionIdMember_EmptyWhiteSpaceOrTooLongSessionId_ThrowsArgumentExceptionNamingSessionId(string member, string kind)
    {
        using var f = new RegistryFixture();
        string sessionId = kind switch
        {
            "empty" => string.Empty,
            "space" => " ",
            "tab-newline" => "\t\r\n ",
            "257 chars" => new string('x', ActiveRunRegistry.MaxSessionIdLength + 1),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind."),
        };

        f.Registry.Invoking(r => RegistryMemberCalls.CallWithSessionId(r, member, sessionId))
            .Should().ThrowExactly<ArgumentException>()
            .Which.ParamName.Should().Be("sessionId");
        f.Registry.ActiveCount.Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(SessionIdMembers))]
    public void SessionIdMember_SessionIdOfExactly256Chars_IsAccepted(string member)
    {
        using var f = new RegistryFixture();
        string sessionId = new('x', 256);

        f.Registry.Invoking(r => RegistryMemberCalls.CallWithSessionId(r, member, sessionId)).Should().NotThrow();
    }

    [Fact]
    public void Start_SessionIdOfExactly256Chars_IsTrackedLikeAnyOther()
    {
        using var f = new RegistryFixture();
        string sessionId = new('s', 256);

        RunHandle run = f.Registry.Start(sessionId);

        ActiveRunRegistry.MaxSessionIdLength.Should().Be(256);
        f.Registry.IsActive(sessionId).Should().BeTrue();
        f.Registry.TryGetRun(sessionId, out RunInfo? info).Should().BeTrue();
        info!.SessionId.Should().Be(sessionId);
        f.Registry.TryAbort(sessionId, run.RunId).Should().BeTrue();
    }

    public static TheoryData<string> InvalidOverrides =>
        ["Timeout zero", "Timeout negative", "Timeout above MaxRunDuration", "GracePeriod negative", "GracePeriod above 24 days"];

    [Theory]
    [MemberData(nameof(InvalidOverrides))]
    public void Start_PerRunOverrideOutOfRange_ThrowsAndLeavesRegistryUnchanged(string kind)
    {
        using var f = new RegistryFixture();
        RunHandle existing = f.Registry.Start("busy");
        (RunStartOptions bad, string optionName) = InvalidOverride(kind, f.Options, supersede: false);
        (RunStartOptions badSupersede, _) = InvalidOverride(kind, f.Options, supersede: true);

        f.Registry.Invoking(r => r.Start("idle", bad))
            .Should().ThrowExactly<ArgumentOutOfRangeException>()
            .WithMessage($"*{optionName}*");
        f.Registry.Invoking(r => r.TryStart("idle", out _, bad))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();

        // Validation happens before anything else: an invalid supersede does not abort the current run.
        f.Registry.Invoking(r => r.Start("busy", badSupersede))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();
        f.Registry.Invoking(r => r.TryStart("busy", out _, badSupersede))
            .Should().ThrowExactly<ArgumentOutOfRangeException>();

        f.Registry.IsActive("idle").Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(1);
        existing.IsCurrent.Should().BeTrue();
        existing.Status.Should().Be(RunStatus.Running);
        existing.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunStarted").Should().ContainSingle();
    }

    [Fact]
    public void Start_PerRunOverridesAtTheirLimits_AreAccepted()
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => r.Start("max-timeout", new RunStartOptions { Timeout = f.Options.MaxRunDuration }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("zero-grace", new RunStartOptions { GracePeriod = TimeSpan.Zero }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("max-grace", new RunStartOptions { GracePeriod = RunSupervisorOptions.GracePeriodLimit }))
            .Should().NotThrow();
        f.Registry.Invoking(r => r.Start("tiny-timeout", new RunStartOptions { Timeout = TimeSpan.FromTicks(1) }))
            .Should().NotThrow();
        f.Registry.ActiveCount.Should().Be(4);
    }

    [Fact]
    public void Start_TimeoutOverridePastRunTimeoutLimit_ThrowsOutOfRangeAndLeavesRegistryUnchanged()
    {
        // MaxRunDuration may be up to 365 days, but a single timeout never exceeds RunTimeoutLimit (24 days):
        // Start must refuse it before it registers anything, or the session is held by a run whose handle
        // nobody ever received.
        using var f = new RegistryFixture(new RunSupervisorOptions { MaxRunDuration = RunSupervisorOptions.MaxRunDurationLimit });
        using (new FluentAssertions.Execution.AssertionScope())
        {
            f.Registry.Invoking(r => r.Start("s1", new RunStartOptions { Timeout = RunSupervisorOptions.RunTimeoutLimit + TimeSpan.FromTicks(1) }))
                .Should().ThrowExactly<ArgumentOutOfRangeException>()
                .Which.ParamName.Should().Be("options");
            f.Registry.IsActive("s1").Should().BeFalse("a Start that throws must not leave a run behind");
            f.Registry.ActiveCount.Should().Be(0);
        }

        f.Registry.Start("s1", new RunStartOptions { Timeout = RunSupervisorOptions.RunTimeoutLimit }).Deadline
            .Should().Be(f.Time.GetUtcNow() + RunSupervisorOptions.RunTimeoutLimit);
    }

    public static TheoryData<string, bool> InvalidRegistryOptions
    {
        get
        {
            var data = new TheoryData<string, bool>();
            foreach (string kind in new[]
            {
                "RunTimeout zero", "RunTimeout negative", "RunTimeout above 24 days", "GracePeriod negative",
                "GracePeriod above 24 days", "MaxRunDuration below RunTimeout", "MaxAbandonedRuns zero",
            })
            {
                data.Add(kind, false);
                data.Add(kind, true);
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(InvalidRegistryOptions))]
    public void Constructor_InvalidOptions_ThrowsOptionsValidationNamingOption(string kind, bool dependencyInjectionConstructor)
    {
        var time = new FakeTimeProvider();
        var options = new RunSupervisorOptions { MaxRunDuration = TimeSpan.FromDays(30) };
        string optionName;
        switch (kind)
        {
            case "RunTimeout zero": options.RunTimeout = TimeSpan.Zero; optionName = "RunTimeout"; break;
            case "RunTimeout negative": options.RunTimeout = TimeSpan.FromSeconds(-1); optionName = "RunTimeout"; break;
            case "RunTimeout above 24 days": options.RunTimeout = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1); optionName = "RunTimeout"; break;
            case "GracePeriod negative": options.GracePeriod = TimeSpan.FromTicks(-1); optionName = "GracePeriod"; break;
            case "GracePeriod above 24 days": options.GracePeriod = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1); optionName = "GracePeriod"; break;
            case "MaxRunDuration below RunTimeout": options.MaxRunDuration = options.RunTimeout - TimeSpan.FromTicks(1); optionName = "MaxRunDuration"; break;
            case "MaxAbandonedRuns zero": options.MaxAbandonedRuns = 0; optionName = "MaxAbandonedRuns"; break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind.");
        }

        Func<ActiveRunRegistry> construct = dependencyInjectionConstructor
            ? () => new ActiveRunRegistry(Microsoft.Extensions.Options.Options.Create(options), time, NullLogger<ActiveRunRegistry>.Instance)
            : () => new ActiveRunRegistry(options, time, NullLoggerFactory.Instance);

        OptionsValidationException ex = construct.Should().ThrowExactly<OptionsValidationException>().Which;
        ex.OptionsType.Should().Be<RunSupervisorOptions>();
        ex.Failures.Should().ContainSingle().Which.Should().Contain($"RunSupervisorOptions.{optionName}");
    }

    [Fact]
    public void Constructor_NullArguments_ThrowArgumentNullNamingParameter()
    {
        IOptions<RunSupervisorOptions> options = Microsoft.Extensions.Options.Options.Create(new RunSupervisorOptions());
        var time = new FakeTimeProvider();
        ILogger<ActiveRunRegistry> logger = NullLogger<ActiveRunRegistry>.Instance;

        FluentActions.Invoking(() => new ActiveRunRegistry(null!, time, logger))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("options");
        FluentActions.Invoking(() => new ActiveRunRegistry(options, null!, logger))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("timeProvider");
        FluentActions.Invoking(() => new ActiveRunRegistry(options, time, null!))
            .Should().ThrowExactly<ArgumentNullException>().Which.ParamName.Should().Be("logger");
    }

    [Fact]
    public void Constructor_ConvenienceWithoutArguments_UsesDefaultOptions()
    {
        // Null options, time provider and logger factory mean the defaults; the default timeout is 10 minutes.
        using var registry = new ActiveRunRegistry();

        RunHandle run = registry.Start("s1");

        (run.Deadline - run.StartedAt).Should().Be(TimeSpan.FromMinutes(10));
        run.Dispose();
        registry.IsActive("s1").Should().BeFalse();
    }

    private static (RunStartOptions Options, string OptionName) InvalidOverride(string kind, RunSupervisorOptions registryOptions, bool supersede) => kind switch
    {
        "Timeout zero" => (new RunStartOptions { Timeout = TimeSpan.Zero, WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "Timeout negative" => (new RunStartOptions { Timeout = TimeSpan.FromSeconds(-1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "Timeout above MaxRunDuration" => (new RunStartOptions { Timeout = registryOptions.MaxRunDuration + TimeSpan.FromTicks(1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.Timeout"),
        "GracePeriod negative" => (new RunStartOptions { GracePeriod = TimeSpan.FromTicks(-1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.GracePeriod"),
        "GracePeriod above 24 days" => (new RunStartOptions { GracePeriod = TimeSpan.FromDays(24) + TimeSpan.FromTicks(1), WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject }, "RunStartOptions.GracePeriod"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown kind."),
    };

    [Fact]
    public void SessionId_TooLong_MessageGivesTheLimitAndTheLength()
    {
        using var f = new RegistryFixture();

        f.Registry.Invoking(r => r.Start(new string('x', 300)))
            .Should().Throw<ArgumentException>().Which.Message.Should().ContainAll("at most 256", "(was 300)");
    }

    [Fact]
    public void Constructor_OptionsValueNull_ThrowsArgumentExceptionNamingOptions()
    {
        var time = new FakeTimeProvider();

        FluentActions.Invoking(() => new ActiveRunRegistry(new NullValueOptions(), time, Microsoft.Extensions.Logging.Abstractions.NullLogger<ActiveRunRegistry>.Instance))
            .Should().ThrowExactly<ArgumentException>()
            .Which.Should().Match<ArgumentException>(e => e.ParamName == "options" && e.Message.Contains("Value is null", StringComparison.Ordinal));
    }

    private sealed class NullValueOptions : IOptions<RunSupervisorOptions>
    {
        public RunSupervisorOptions Value => null!;
    }
}
