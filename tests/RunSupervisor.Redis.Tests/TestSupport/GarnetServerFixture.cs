using RunSupervisor.LoopbackServers;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// Microsoft Garnet hosted in this process on a free loopback port (<see cref="LoopbackGarnet"/>), so the Redis suite
/// needs nothing but the .NET SDK.
/// </summary>
public sealed class GarnetServerFixture : LoopbackServerFixture<LoopbackGarnet>
{
    /// <summary>Small: a test writes a few keys, and a run starts many servers.</summary>
    private static readonly GarnetSizes Sizes = new(Index: "16m", Memory: "64m", Page: "1m");

    /// <inheritdoc/>
    public override string Name => "Garnet";

    /// <inheritdoc/>
    protected override Task<LoopbackGarnet> StartOnAsync(int port) => LoopbackGarnet.StartAsync(port, Sizes, Within);
}
