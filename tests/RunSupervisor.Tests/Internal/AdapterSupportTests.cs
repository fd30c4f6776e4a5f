namespace RunSupervisor.Tests.Internal;

/// <summary>
/// <see cref="AdapterSupport"/>: how the adapters' options become the start options of every run, and how a session
/// id an adapter picked is checked.
/// </summary>
public sealed class AdapterSupportTests
{
    private const string WhenBusyOption = "Options.BusyBehavior";
    private const string PerRunOption = "Options.RunOptions";

    [Fact]
    public void ComposeStartOptions_NothingToOverride_ReturnsNullSoTheRegistryDefaultsApply()
    {
        using var registry = new ActiveRunRegistry();

        RunStartOptions? composed = Compose(registry, perRun: null, SessionBusyBehavior.Reject, background: false);

        composed.Should().BeNull();
    }

    [Fact]
    public void ComposeStartOptions_OnlyTheBusyBehaviourSet_ForegroundRunsThatWait()
    {
        using var registry = new ActiveRunRegistry();

        RunStartOptions? composed = Compose(registry, perRun: null, SessionBusyBehavior.Wait, background: false);

        composed.Should().NotBeNull();
        composed!.WhenBusy.Should().Be(SessionBusyBehavior.Wait);
        composed.Background.Should().BeFalse("neither the adapter nor its per-run options asked for background runs");
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void ComposeStartOptions_BackgroundFromTheAdapterOrItsPerRunOptions_BackgroundRuns(bool adapterBackground, bool perRunBackground)
    {
        using var registry = new ActiveRunRegistry();

        RunStartOptions? composed = Compose(registry, new RunStartOptions { Background = perRunBackground }, SessionBusyBehavior.Reject, adapterBackground);

        composed!.Background.Should().BeTrue();
    }

    [Fact]
    public void ComposeStartOptions_PerRunOptions_CarriedOverWithTheAdaptersBusyBehaviour()
    {
        using var registry = new ActiveRunRegistry();
        var perRun = new RunStartOptions { Timeout = TimeSpan.FromSeconds(5), IdleTimeout = TimeSpan.FromSeconds(2) };

        RunStartOptions? composed = Compose(registry, perRun, SessionBusyBehavior.Supersede, background: false);

        composed!.Timeout.Should().Be(TimeSpan.FromSeconds(5));
        composed.IdleTimeout.Should().Be(TimeSpan.FromSeconds(2));
        composed.WhenBusy.Should().Be(SessionBusyBehavior.Supersede);
    }

    [Fact]
    public void ValidateSessionId_AtTheLengthLimit_Accepted()
    {
        string longest = new('s', SessionIds.MaxLength);

        Action act = () => AdapterSupport.ValidateSessionId(longest, "ChatOptions.ConversationId", "options");

        act.Should().NotThrow();
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void ValidateSessionId_EmptyOrWhiteSpace_ThrowsNamingWhereTheIdCameFrom(string sessionId)
    {
        Action act = () => AdapterSupport.ValidateSessionId(sessionId, "ChatOptions.ConversationId", "options");

        act.Should().Throw<ArgumentException>().WithParameterName("options").WithMessage("*ChatOptions.ConversationId*");
    }

    [Fact]
    public void ValidateSessionId_OneOverTheLengthLimit_Throws()
    {
        string tooLong = new('s', SessionIds.MaxLength + 1);

        Action act = () => AdapterSupport.ValidateSessionId(tooLong, "ChatOptions.ConversationId", "options");

        act.Should().Throw<ArgumentException>().WithParameterName("options");
    }

    private static RunStartOptions? Compose(ActiveRunRegistry registry, RunStartOptions? perRun, SessionBusyBehavior whenBusy, bool background)
        => AdapterSupport.ComposeStartOptions(registry, perRun, whenBusy, background, WhenBusyOption, PerRunOption, "options");
}
