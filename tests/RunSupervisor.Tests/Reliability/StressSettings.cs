using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>Settings of one randomized stress run.</summary>
/// <param name="Admission">
/// Whether the workout includes the admission and liveness operations (waiting starts, lanes and a global cap, background
/// runs and preemption, progress reports and idle timeouts) and their checks; by default on the fake clock only, where
/// the round checks run. The real-time variant keeps the workout it was tuned for unless it asks.
/// </param>
internal sealed record StressSettings(int Seed, long TotalOperations, int Workers, int OperationsPerRound, bool RealTime, bool? Admission = null)
{
    /// <summary>The environment variable that fixes the seed (otherwise a random one is drawn and printed).</summary>
    public const string SeedVariable = "STRESS_SEED";

    /// <summary>The environment variable that sets the total number of operations (for example 1000000 locally).</summary>
    public const string OperationsVariable = "STRESS_OPS";

    /// <summary>The environment variable that, set to 0, only reports a run end stamped before its start instead of failing on it.</summary>
    public const string StrictEndOrderVariable = "STRESS_STRICT_END_ORDER";

    /// <summary>
    /// The environment variable that, set to 0, only reports a registry instant stamped from a clock reading older than
    /// what it stamps (a run admitted from the queue stamped before its start was queued, a stalled run's end stamped
    /// before its idle instant) instead of failing on it.
    /// </summary>
    public const string StrictStampsVariable = "STRESS_STRICT_STAMPS";

    /// <summary>Gets a value indicating whether an end stamped before its run's start is a violation (unless <see cref="StrictEndOrderVariable"/> is 0).</summary>
    public static bool StrictEndOrder => Environment.GetEnvironmentVariable(StrictEndOrderVariable) != "0";

    /// <summary>Gets a value indicating whether a stale stamp is a violation (unless <see cref="StrictStampsVariable"/> is 0).</summary>
    public static bool StrictStamps => Environment.GetEnvironmentVariable(StrictStampsVariable) != "0";

    /// <summary>Gets a value indicating whether the admission and liveness operations are part of the workout.</summary>
    public bool UsesAdmission => Admission ?? !RealTime;

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
    IReadOnlyList<string> EndOrderAnomalies,
    string Configuration,
    IReadOnlyDictionary<string, long> Counters,
    IReadOnlyList<string> StampAnomalies)
{
    /// <summary>Gets how often the named event happened (see the harness's counters), zero if never.</summary>
    public long Count(string name) => Counters.TryGetValue(name, out long n) ? n : 0;

    public override string ToString()
        => $"{Operations:N0} operations in {Rounds} rounds, {Elapsed.TotalSeconds:0.0} s; {Configuration}; {RunsStarted:N0} runs started; ended: "
            + string.Join(", ", EndReasons.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value:N0}"))
            + $"; heartbeats dropped {HeartbeatsDropped:N0}, owed {HeartbeatsOwed:N0}; ledger before settling {AbandonedAtEnd:N0}; fake time {FakeTimeAdvancedMs:N0} ms"
            + (Counters.Count == 0 ? string.Empty : "; " + string.Join(", ", Counters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value:N0}")))
            + (EndOrderAnomalies.Count == 0 ? string.Empty : $"; {EndOrderAnomalies.Count} run end(s) stamped before their start, e.g. {EndOrderAnomalies[0]}")
            + (StampAnomalies.Count == 0 ? string.Empty : $"; {StampAnomalies.Count} stale stamp(s), e.g. {StampAnomalies[0]}");
}
