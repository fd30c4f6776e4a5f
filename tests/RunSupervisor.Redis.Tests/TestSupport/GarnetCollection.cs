namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Every test on the in-process Garnet shares one instance and runs one at a time (some restart it).</summary>
[CollectionDefinition(Name)]
public sealed class GarnetCollection : ICollectionFixture<GarnetServerFixture>
{
    public const string Name = "Garnet";
}
