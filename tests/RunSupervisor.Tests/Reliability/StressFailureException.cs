namespace RunSupervisor.Tests.Reliability;

/// <summary>A failed stress run, with the seed that replays its operation sequences.</summary>
public sealed class StressFailureException : Exception
{
    public StressFailureException(int seed, Exception inner)
        : base($"Stress run failed with seed {seed}. Replay it with {StressSettings.SeedVariable}={seed}. {inner.Message}", inner)
        => Seed = seed;

    public StressFailureException()
    {
    }

    public StressFailureException(string message)
        : base(message)
    {
    }

    public StressFailureException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public int Seed { get; }
}
