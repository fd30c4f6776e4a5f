using FluentAssertions;
using RunSupervisor.Tests.TestSupport;
using Xunit;

namespace RunSupervisor.Tests.Runs;

/// <summary><see cref="RunContext.Current"/>: the supervised run a provider (and the tools deep inside it) executes for.</summary>
public sealed class RunContextTests
{
    private const string Session = "s1";

    [Fact]
    public async Task Current_InsideARunAsyncProvider_DescribesThatRunAndItsToken()
    {
        using var f = new RegistryFixture();
        CancellationToken given = default;

        RunContext? seen = await f.Registry.RunAsync(Session, ct =>
        {
            given = ct;
            return Task.FromResult(RunContext.Current);
        }).Guard();

        seen.Should().NotBeNull();
        seen!.SessionId.Should().Be(Session);
        seen.RunId.Should().Be(f.Ended.Should().ContainSingle().Subject.Args.RunId);
        seen.FencingToken.Should().Be(seen.RunId);
        seen.AbortToken.Should().Be(given, "the context's token is the one the provider was given");
        seen.ToString().Should().Contain(Session).And.Contain($"Run {seen.RunId}");
    }

    [Fact]
    public async Task Current_AfterAwaitsAndInTasksTheProviderStarts_StillTheRun()
    {
        using var f = new RegistryFixture();

        (RunContext? AfterAwait, RunContext? InChild) seen = await f.Registry.RunAsync(Session, async _ =>
        {
            await Task.Yield();
            RunContext? afterAwait = RunContext.Current;
            RunContext? inChild = await Task.Run(() => RunContext.Current);
            return (afterAwait, inChild);
        }).Guard();

        seen.AfterAwait.Should().NotBeNull();
        seen.InChild.Should().BeSameAs(seen.AfterAwait);
    }

    [Fact]
    public async Task Current_OutsideAndAfterARun_IsNull()
    {
        using var f = new RegistryFixture();
        RunContext.Current.Should().BeNull();

        await f.Registry.RunAsync(Session, _ => Task.FromResult(0)).Guard();

        RunContext.Current.Should().BeNull("the provider's context never flows back to the caller");
    }

    [Fact]
    public async Task Current_HandleStartedRun_IsNotSetForTheOwner()
    {
        using var f = new RegistryFixture();

        using RunHandle run = await f.Registry.StartAsync(Session);

        RunContext.Current.Should().BeNull("a handle's owner runs its own code; only supervised invocations set the context");
    }
}
