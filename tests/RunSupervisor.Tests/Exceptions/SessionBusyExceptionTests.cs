namespace RunSupervisor.Tests.Exceptions;

/// <summary>
/// <see cref="SessionBusyException"/>: a session busy on this host is described by its run id, one busy on another
/// host by that host and the owner's fencing token; the properties carry the same facts.
/// </summary>
public sealed class SessionBusyExceptionTests
{
    [Fact]
    public void Constructor_BusyOnThisHost_MessageNamesTheRun()
    {
        var ex = new SessionBusyException("s", 7);

        ex.Message.Should().Be("Session 's' already has an active run (RunId 7). Wait for it to end, abort it, or start with RunStartOptions.WhenBusy = SessionBusyBehavior.Supersede.");
        ex.SessionId.Should().Be("s");
        ex.RunId.Should().Be(7);
        ex.FencingToken.Should().Be(7, "without a lease store the fencing token is the run id");
        ex.OwnerHostId.Should().BeNull();
    }

    [Fact]
    public void Constructor_BusyOnAnotherHost_MessageNamesTheHostAndFencingToken()
    {
        var ex = new SessionBusyException("s", 0, 42, "host-b");

        ex.Message.Should().Be("Session 's' already has an active run on host 'host-b' (fencing token 42). Wait for it to end, abort it (TryAbortAsync), or start with RunStartOptions.WhenBusy = SessionBusyBehavior.Supersede.");
        ex.SessionId.Should().Be("s");
        ex.RunId.Should().Be(0);
        ex.FencingToken.Should().Be(42);
        ex.OwnerHostId.Should().Be("host-b");
    }
}
