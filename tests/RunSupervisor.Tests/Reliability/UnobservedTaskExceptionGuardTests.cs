using System.Runtime.CompilerServices;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The suite-wide guard (<see cref="UnobservedTaskExceptionGuard"/>) is installed, sees unobserved
/// task exceptions, tells deliberate control faults from real ones, and turns real ones into a run failure.
/// </summary>
public sealed class UnobservedTaskExceptionGuardTests
{
    [Fact]
    public void Guard_SuiteRunning_IsInstalledByTheModuleInitializer()
        => UnobservedTaskExceptionGuard.IsInstalled.Should().BeTrue("the module initializer subscribes before any test runs");

    [Fact]
    public void Guard_DeliberateUnobservedFault_IsSeenButNotCountedAsAFailure()
    {
        string message = $"deliberate guard check {Guid.NewGuid()}";
        UnobservedTaskExceptionGuard.ExpectDeliberate(message);
        int before = UnobservedTaskExceptionGuard.DeliberateSeen;

        DropUnobserved(message);
        UnobservedTaskExceptionGuard.FlushFinalizers();

        UnobservedTaskExceptionGuard.DeliberateSeen.Should().BeGreaterThan(before, "the guard saw the unobserved fault");
        UnobservedTaskExceptionGuard.UnexpectedSoFar.Should().NotContain(m => m.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Guard_ControlFaultOfTheProbe_IsDeliberateOnlyWhenNeverThrown()
    {
        var control = new InvalidOperationException($"{UnobservedTaskExceptionGuard.ControlFaultPrefix}{Guid.NewGuid()}");
        UnobservedTaskExceptionGuard.IsDeliberate(control).Should().BeTrue();

        Exception thrown;
        try
        {
            throw new InvalidOperationException($"{UnobservedTaskExceptionGuard.ControlFaultPrefix}thrown");
        }
        catch (InvalidOperationException ex)
        {
            thrown = ex;
        }

        UnobservedTaskExceptionGuard.IsDeliberate(thrown).Should().BeFalse("a real, thrown exception is never excused by its message");
        UnobservedTaskExceptionGuard.IsDeliberate(new InvalidOperationException("anything else")).Should().BeFalse();
    }

    [Fact]
    public void Guard_CreateFailure_NullWhenCleanAndNamesEveryReportOtherwise()
    {
        UnobservedTaskExceptionGuard.CreateFailure([]).Should().BeNull();

        Exception? failure = UnobservedTaskExceptionGuard.CreateFailure(["System.InvalidOperationException: one", "System.TimeoutException: two"]);

        failure.Should().NotBeNull();
        failure!.Message.Should().ContainAll("UnobservedTaskException fired 2 time(s)", "one", "two");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropUnobserved(string message) => _ = Task.FromException(new InvalidOperationException(message));
}
