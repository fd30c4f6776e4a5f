using RunSupervisor.Tests.TestSupport;
namespace RunSupervisor.Tests.Exceptions;

/// <summary>The messages of the registry's exceptions name the session, the run and the time that passed.</summary>
public sealed class ExceptionMessageTests
{

    [Fact]
    public void Exceptions_Messages_NameSessionRunAndDuration()
    {
        new RunEvictedException("s", 7, TimeSpan.FromSeconds(90)).Message.Should().ContainAll("Run 7", "'s'", "00:01:30", "force-evicted");
        new RunTimedOutException("s", 8, TimeSpan.FromMinutes(2)).Message.Should().ContainAll("Run 8", "'s'", "00:02:00", "timed out");
    }
}
