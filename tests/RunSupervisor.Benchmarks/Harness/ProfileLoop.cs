using System.Diagnostics;
using System.Globalization;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>
/// The <c>profile</c> mode: case (a), start + release on an idle session, in a tight loop, for a sampling profiler
/// (<c>perf record</c>) to attribute the time; and, unless <c>--impl runsupervisor</c>, the floor in alternating
/// rounds, so that both see the same machine. On a shared virtual machine the speed drifts over minutes, which
/// BenchmarkDotNet (one implementation after the other) cannot cancel out; alternating rounds can.
/// </summary>
public static class ProfileLoop
{
    /// <summary>Runs the mode.</summary>
    /// <param name="args"><c>--ops</c> per round (2,000,000), <c>--rounds</c> (15), <c>--active-runs</c> (1,000), <c>--impl both|runsupervisor</c>.</param>
    /// <returns>0.</returns>
    public static int Run(HarnessArguments args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int ops = args.GetInt("ops", 2_000_000);
        int rounds = args.GetInt("rounds", 15);
        int activeRuns = args.GetInt("active-runs", 1_000);
        bool withFloor = args.GetString("impl", "both") switch
        {
            "both" => true,
            "runsupervisor" => false,
            var other => throw new ArgumentException($"--impl must be both or runsupervisor (was '{other}')."),
        };
        args.ThrowIfUnknown();

        const string SessionId = "bench-session-a";
        using ActiveRunRegistry registry = WarmRegistries.Registry(activeRuns);
        using FloorSupervisor floor = WarmRegistries.Floor(withFloor ? activeRuns : 0);
        List<double> registryNs = [];
        List<double> floorNs = [];
        for (int round = 0; round < rounds; round++)
        {
            long started = Stopwatch.GetTimestamp();
            for (int i = 0; i < ops; i++)
            {
                registry.Start(SessionId).Dispose();
            }

            registryNs.Add(Stopwatch.GetElapsedTime(started).TotalNanoseconds / ops);
            if (withFloor)
            {
                started = Stopwatch.GetTimestamp();
                for (int i = 0; i < ops; i++)
                {
                    floor.StartAndRelease(SessionId);
                }

                floorNs.Add(Stopwatch.GetElapsedTime(started).TotalNanoseconds / ops);
            }
        }

        // The first round includes tiering up; the median of the rest is the figure.
        double registryMedian = Median(registryNs.Skip(1));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{activeRuns:N0} active runs, {rounds} rounds of {ops:N0} start + release"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RunSupervisor: median {registryMedian:F1} ns/op"));
        if (withFloor)
        {
            double floorMedian = Median(floorNs.Skip(1));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Floor:         median {floorMedian:F1} ns/op"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio (medians): {registryMedian / floorMedian:F2}"));
        }

        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
