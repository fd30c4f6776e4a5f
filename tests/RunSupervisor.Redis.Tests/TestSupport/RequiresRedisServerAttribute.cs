namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Marks a test class whose <see cref="StoreFactAttribute"/> cases need <c>redis-server</c> on PATH.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RequiresRedisServerAttribute : Attribute
{
}
