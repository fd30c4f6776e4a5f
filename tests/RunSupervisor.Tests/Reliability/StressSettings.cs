using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>Settings of one randomized stress run.</summary>
internal sealed record StressSettings(int Seed, long TotalOperations, int Workers, int OperationsPerRound, bool RealTime)
{
    /// <summary>The environment variable that fixes the seed (otherwise a random one is drawn and printed).</summary>
    public const string SeedVariable = "STRESS_SEED";

    /// <summary>The environment variable that sets the total number of operations (for example 1000000 locally).</summary>
    public const string OperationsVariable = "STRESS_OPS";

    /// <summary>The environment variable that, set to 0, only reports a run end stamped before its start instead of failing on it.</summary>
    public const string StrictEndOrderVariable = "STRESS_STRICT_END_ORDER";

    /// <summary>Gets a value indicating whether an end stamped before its run's start is a violation (unless <see cref="StrictEndOrderVariable"/> is 0).</summary>
    public static bool StrictEndOrder => Environment.GetEnvironmentVariable(StrictEndOrderVariable) != "0";

    /// <summary>The seed from <see cref="SeedVariable"/>, or a fresh one.</summary>
    public static int SeedFromEnvironment()
        => int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed)
            ? seed
            : Random.Shared.Next();

    /// <summary>The operation count from <see cref="OperationsVariable"/>, or <paramref name="fallback"/>.</summary>
    public static long OperationsFromEnvironment(long fallback)
        => long.TryParse(Environment.GetEnvironmentVariable(OperationsVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out long ops) && ops > 0
            ? ops
            : fallback;
}

/// <summary>What a stress run did, for the test output and the README figures.</summary>
internal sealed record StressReport(
    long Operations,
    int Rounds,
    long RunsStarted,
    IReadOnlyDictionary<RunEndReason, int> EndReasons,
    long HeartbeatsDropped,
    int HeartbeatsOwed,
    long AbandonedAtEnd,
    long FakeTimeAdvancedMs,
    TimeSpan Elapsed,
    IReadOnlyList<string> EndOrderAnomalies)
{
    public override string ToString()
        => $"{Operations:N0} operations in {Rounds} rounds, {Elapsed.TotalSeconds:0.0} s; {RunsStarted:N0} runs started; ended: "
            + string.Join(", ", EndReasons.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value:N0}"))
            + $"; heartbeats dropped {HeartbeatsDropped:N0}, owed {HeartbeatsOwed:N0}; ledger before settling {AbandonedAtEnd:N0}; fake time {FakeTimeAdvancedMs:N0} ms"
            + (EndOrderAnomalies.Count == 0 ? string.Empty : $"; {EndOrderAnomalies.Count} run end(s) stamped before their start, e.g. {EndOrderAnomalies[0]}");
}
