using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// Bad input, beyond what <c>ActiveRunRegistryTests</c> and <c>RunSupervisorOptionsTests</c> already
/// cover (null, empty, white-space and 257-character ids; one invalid option at a time). Session ids are opaque
/// ordinal strings: control characters, unpaired surrogates and any Unicode are accepted as long as the id has 1 to
/// 256 UTF-16 code units and is not only white space. Every rejected call leaves the registry exactly as it was.
/// </summary>
public sealed class BadInputTests
{
    private const string Bystander = "bystander";

    /// <summary>
    /// Ids that are accepted as they are, compared ordinally. Not enumerated at discovery: the runner serializes theory
    /// data as UTF-8, which would turn the unpaired surrogates into U+FFFD before the test saw them.
    /// </summary>
    public static TheoryData<string, string> AcceptedIds() => new()
    {
        { "control characters", "a\u0000b\u0001c\u001Fd\u007F" },
        { "a lone control character", "\u0007" },
        { "unpaired high surrogate", "\uD800" },
        { "unpaired low surrogate", "x\uDC00y" },
        { "reversed surrogate pair", "\uDE00\uD83D" },
        { "zero-width space (not white space)", "\u200B" },
        { "128 emoji = 256 UTF-16 code units", string.Concat(Enumerable.Repeat("\U0001F600", 128)) },
        { "256 CJK characters", new string('\u4E2D', 256) },
        { "white space around text", "  s  " },
    };

    /// <summary>Ids that are rejected with <see cref="ArgumentException"/> naming the parameter.</summary>
    public static TheoryData<string, string> RejectedIds() => new()
    {
        { "no-break and em spaces only (white space)", "\u00A0\u2003" },
        { "line and paragraph separators only", "\u2028\u2029" },
        { "129 emoji = 258 UTF-16 code units", string.Concat(Enumerable.Repeat("\U0001F600", 129)) },
        { "257 CJK characters", new string('\u4E2D', 257) },
        { "a million characters", new string('x', 1_000_000) },
    };

    [Theory]
    [MemberData(nameof(AcceptedIds), DisableDiscoveryEnumeration = true)]
    public void SessionId_OpaqueUnicode_AcceptedTrackedAndComparedOrdinally(string because, string sessionId)
    {
        using var p = new PolicyFixture();
        using RunHandle run = p.Registry.Start(sessionId);

        p.Registry.IsActive(sessionId).Should().BeTrue(because);
        p.Registry.TryGetRun(sessionId, out RunInfo? info).Should().BeTrue();
        info!.SessionId.Should().Be(sessionId);
        string other = sessionId.Length < ActiveRunRegistry.MaxSessionIdLength ? sessionId + "\u0000" : "\u0000" + sessionId[1..];
        p.Registry.IsActive(other).Should().BeFalse("a different string is a different session");
        p.Policy.Resolve(new QueueRequest(sessionId, IsHeartbeat: true)).Action.Should().Be(QueueAction.Drop);
        p.Registry.TryAbort(sessionId, run.RunId).Should().BeTrue();
        run.Dispose();
        p.Owed.Should().ContainSingle().Which.SessionId.Should().Be(sessionId);
    }

    [Fact]
    public void SessionId_LookAlikes_AreDifferentSessions()
    {
        using var f = new RegistryFixture();
        using RunHandle precomposed = f.Registry.Start("caf\u00E9");
        using RunHandle decomposed = f.Registry.Start("cafe\u0301");
        using RunHandle upper = f.Registry.Start("CAF\u00C9");

        f.Registry.ActiveCount.Should().Be(3, "ids are compared ordinally: no normalization, no case folding");
    }

    [Theory]
    [MemberData(nameof(RejectedIds))]
    public void SessionId_Rejected_EveryEntryPointThrowsAndNothingChanges(string because, string sessionId)
    {
        using var p = new PolicyFixture();
        using RunHandle bystander = p.Registry.Start(Bystander);
        p.DropHeartbeats(Bystander, 1);
        Snapshot before = Snapshot.Of(p);

        foreach ((string member, Action call) in EntryPoints(p, sessionId))
        {
            call.Should().Throw<ArgumentException>("{0}: {1}", member, because)
                .Which.ParamName.Should().Be(member is "Resolve" ? "request" : "sessionId");
        }

        Snapshot.Of(p).Should().BeEquivalentTo(before, "a rejected call leaves the registry and the policy unchanged");
        bystander.IsCurrent.Should().BeTrue();
        bystander.AbortToken.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public void SessionId_Null_PolicyEntryPointsThrowArgumentExceptionAndNothingChanges()
    {
        using var p = new PolicyFixture();
        using RunHandle bystander = p.Registry.Start(Bystander);
        Snapshot before = Snapshot.Of(p);

        p.Policy.Invoking(x => x.Resolve(new QueueRequest(null!, IsHeartbeat: true))).Should().Throw<ArgumentNullException>().WithParameterName("request");
        p.Policy.Invoking(x => x.GetDroppedHeartbeats(null!)).Should().Throw<ArgumentNullException>().WithParameterName("sessionId");

        Snapshot.Of(p).Should().BeEquivalentTo(before);
    }

    [Fact]
    public void Start_SupersedeWithInvalidOverride_BusyRunIsNotSuperseded()
    {
        using var f = new RegistryFixture();
        RunHandle busy = f.Registry.Start("s");
        var invalid = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede, Timeout = TimeSpan.Zero };

        f.Registry.Invoking(r => r.Start("s", invalid)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("options");
        f.Registry.Invoking(r => r.TryStart("s", out _, invalid)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => { _ = f.Registry.RunAsync("s", _ => Task.FromResult(1), invalid); }).Should().Throw<ArgumentOutOfRangeException>();

        busy.IsCurrent.Should().BeTrue("validation happens before anything is superseded");
        busy.Status.Should().Be(RunStatus.Running);
        busy.AbortToken.IsCancellationRequested.Should().BeFalse();
        f.Ended.Should().BeEmpty();
        f.LogsWithEvent("RunSuperseded").Should().BeEmpty();
    }

    [Theory]
    [InlineData("timeout past the 24-day limit although within MaxRunDuration", 25 * 24 * 60, null)]
    [InlineData("timeout TimeSpan.MaxValue", -1, null)]
    [InlineData("grace TimeSpan.MinValue", null, -1)]
    [InlineData("both invalid", 0, -2)]
    public void Start_OverrideOutOfRange_ThrowsArgumentOutOfRangeAndStartsNothing(string because, int? timeoutMinutes, int? graceCode)
    {
        using var f = new RegistryFixture(new RunSupervisorOptions { RunTimeout = TimeSpan.FromMinutes(10), MaxRunDuration = TimeSpan.FromDays(365) });
        TimeSpan? timeout = timeoutMinutes switch
        {
            null => null,
            -1 => TimeSpan.MaxValue,
            int m => TimeSpan.FromMinutes(m),
        };
        TimeSpan? grace = graceCode switch
        {
            null => null,
            -1 => TimeSpan.MinValue,
            _ => TimeSpan.FromTicks(-1),
        };

        f.Registry.Invoking(r => r.Start("s", new RunStartOptions { Timeout = timeout, GracePeriod = grace }))
            .Should().Throw<ArgumentOutOfRangeException>(because).WithParameterName("options");
        f.Registry.ActiveCount.Should().Be(0);
        f.LogsWithEvent("RunStarted").Should().BeEmpty();
    }

    [Fact]
    public void HandleCalls_InvalidArguments_ThrowAndChangeNothing()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s");
        DateTimeOffset deadline = run.Deadline;
        var first = new TaskCompletionSource();
        run.Attach(first.Task);

        run.Invoking(r => r.TryExtendDeadline(TimeSpan.Zero)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("extension");
        run.Invoking(r => r.TryExtendDeadline(TimeSpan.MinValue)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("extension");
        run.TryExtendDeadline(TimeSpan.MaxValue).Should().BeFalse("past MaxRunDuration: refused, not overflowed");
        run.Invoking(r => r.Attach(new TaskCompletionSource().Task)).Should().Throw<InvalidOperationException>("a task is already attached");
        run.Invoking(r => r.Attach(null!)).Should().Throw<ArgumentNullException>();

        run.Deadline.Should().Be(deadline);
        run.Status.Should().Be(RunStatus.Running);
        first.SetResult();
        run.Completion.IsCompleted.Should().BeTrue("the first attached task still governs the run");
    }

    [Fact]
    public void WaitAndDrain_InvalidTimeouts_ThrowAndChangeNothing()
    {
        using var f = new RegistryFixture();
        using RunHandle run = f.Registry.Start("s");

        foreach (TimeSpan bad in new[] { TimeSpan.FromTicks(-1), TimeSpan.MinValue, TimeSpan.MaxValue, TimeSpan.FromDays(50) })
        {
            FluentActions.Invoking(() => { _ = f.Registry.WaitForRunEndAsync("s", bad); }).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("timeout");
            FluentActions.Invoking(() => { _ = f.Registry.DrainAsync(bad, new DrainOptions { AbortRemaining = true, ForceEvictOverdue = true }); })
                .Should().Throw<ArgumentOutOfRangeException>().WithParameterName("timeout");
        }

        run.Status.Should().Be(RunStatus.Running, "a drain with an invalid timeout aborts nothing");
        f.LogsWithEvent("RunAborted").Should().BeEmpty();
    }

    /// <summary>Every combination of broken option rules (15 of them), each value at an extreme.</summary>
    public static TheoryData<int> RuleCombinations()
    {
        var data = new TheoryData<int>();
        for (int mask = 1; mask < 16; mask++)
        {
            data.Add(mask);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RuleCombinations))]
    public void Options_EveryCombinationOfInvalidValues_ThrowsNamingExactlyTheBrokenOptions(int mask)
    {
        var broken = new List<string>();
        var options = new RunSupervisorOptions();
        if ((mask & 1) != 0)
        {
            options.RunTimeout = TimeSpan.MinValue;
            broken.Add("RunTimeout");
        }

        if ((mask & 2) != 0)
        {
            options.GracePeriod = TimeSpan.MaxValue;
            broken.Add("GracePeriod");
        }

        if ((mask & 4) != 0)
        {
            options.MaxRunDuration = TimeSpan.MaxValue;
            broken.Add("MaxRunDuration");
        }

        if ((mask & 8) != 0)
        {
            options.MaxAbandonedRuns = int.MinValue;
            broken.Add("MaxAbandonedRuns");
        }

        OptionsValidationException direct = FluentActions.Invoking(() => new ActiveRunRegistry(options, new FakeTimeProvider()))
            .Should().Throw<OptionsValidationException>().Which;
        ShouldNameExactly(direct.Failures, broken);

        using ServiceProvider services = new ServiceCollection()
            .AddRunSupervisor(o =>
            {
                o.RunTimeout = options.RunTimeout;
                o.GracePeriod = options.GracePeriod;
                o.MaxRunDuration = options.MaxRunDuration;
                o.MaxAbandonedRuns = options.MaxAbandonedRuns;
            })
            .BuildServiceProvider();
        OptionsValidationException viaDi = FluentActions.Invoking(() => services.GetRequiredService<IOptions<RunSupervisorOptions>>().Value)
            .Should().Throw<OptionsValidationException>().Which;
        ShouldNameExactly(viaDi.Failures, broken);
    }

    private static void ShouldNameExactly(IEnumerable<string> failures, List<string> broken)
        => failures.Select(f => f.Split(' ')[0]).Should().BeEquivalentTo(broken.Select(b => $"RunSupervisorOptions.{b}"));

    private static IEnumerable<(string Member, Action Call)> EntryPoints(PolicyFixture p, string sessionId)
    {
        ActiveRunRegistry r = p.Registry;
        yield return ("Start", () => r.Start(sessionId));
        yield return ("Start (supersede)", () => r.Start(sessionId, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }));
        yield return ("TryStart", () => r.TryStart(sessionId, out _));
        yield return ("IsActive", () => r.IsActive(sessionId));
        yield return ("TryGetRun", () => r.TryGetRun(sessionId, out _));
        yield return ("TryAbort", () => r.TryAbort(sessionId));
        yield return ("WaitForRunEndAsync", () => { _ = r.WaitForRunEndAsync(sessionId, TimeSpan.FromSeconds(1)); });
        yield return ("RunAsync<T>", () => { _ = r.RunAsync(sessionId, _ => Task.FromResult(1)); });
        yield return ("RunAsync", () => { _ = r.RunAsync(sessionId, _ => Task.CompletedTask); });
        yield return ("Resolve", () => p.Policy.Resolve(new QueueRequest(sessionId, IsHeartbeat: true)));
        yield return ("GetDroppedHeartbeats", () => p.Policy.GetDroppedHeartbeats(sessionId));
    }

    /// <summary>Everything observable about a registry and its policy.</summary>
    private sealed record Snapshot(
        int ActiveCount,
        IReadOnlyList<RunInfo> Active,
        int AbandonedCount,
        int Ended,
        int Logs,
        int Owed,
        int BystanderDrops)
    {
        public static Snapshot Of(PolicyFixture p) => new(
            p.Registry.ActiveCount,
            p.Registry.GetActiveRuns(),
            p.Registry.AbandonedCount,
            p.F.Ended.Count,
            p.F.Logs.Count,
            p.Owed.Count,
            p.Policy.GetDroppedHeartbeats(Bystander));
    }
}
