using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests;

public sealed class SmokeTests
{
    [Fact]
    public async Task Zombie_NeverSettles_IsForceEvictedAtTimeoutPlusGrace()
    {
        using var f = new RegistryFixture();
        RunHandle run = f.Registry.Start("s1");
        run.Attach(new TaskCompletionSource().Task);

        f.Time.Advance(RegistryFixture.Timeout);
        run.Status.Should().Be(RunStatus.Aborting);
        run.AbortToken.IsCancellationRequested.Should().BeTrue();
        f.Registry.IsActive("s1").Should().BeTrue();

        f.Time.Advance(RegistryFixture.Grace - TimeSpan.FromTicks(1));
        f.Registry.IsActive("s1").Should().BeTrue();
        f.Time.Advance(TimeSpan.FromTicks(1));
        f.Registry.IsActive("s1").Should().BeFalse();
        (await run.Completion).Should().Be(RunEndReason.ForceEvicted);
        f.Registry.AbandonedCount.Should().Be(1);
        f.Ended.Should().ContainSingle().Which.StillRegistered.Should().BeFalse();
        f.LogsWithEvent("RunForceEvicted").Should().ContainSingle();
    }

    [Fact]
    public async Task RunAsync_ProviderIgnoresToken_ThrowsRunEvicted()
    {
        using var f = new RegistryFixture();
        var hang = new TaskCompletionSource<int>();
        Task<int> call = f.Registry.RunAsync("s1", _ => hang.Task);
        f.Time.Advance(RegistryFixture.Timeout + RegistryFixture.Grace);
        await call.Invoking(c => c).Should().ThrowAsync<RunEvictedException>();
        hang.SetException(new InvalidOperationException("late"));
        f.Registry.AbandonedCount.Should().Be(0);
        f.LogsWithEvent("AbandonedRunSettled").Should().ContainSingle();
    }

    [Fact]
    public async Task RunAsync_ProviderHonoursToken_ThrowsRunTimedOut()
    {
        using var f = new RegistryFixture();
        Task<int> call = f.Registry.RunAsync("s1", async ct => { await Task.Delay(Timeout.Infinite, ct); return 1; });
        f.Time.Advance(RegistryFixture.Timeout);
        await call.Invoking(c => c).Should().ThrowAsync<RunTimedOutException>();
        f.Registry.IsActive("s1").Should().BeFalse();
    }
}
