using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using Perfolizer.Horology;
using BenchmarkDotNet.Jobs;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>The configuration every benchmark class runs with, unless the command line names a job.</summary>
public static class BenchmarkConfig
{
    /// <summary>
    /// The repository's job. The operations cost 10 ns to 2 µs, so a 250 ms iteration holds at least 100,000 of them
    /// and the timer's resolution does not matter; 3 warm-up and 15 measured iterations in one launch give a
    /// confidence interval of a few percent on a quiet machine while keeping a case near 10 s (pilot and process start included) and the whole suite
    /// (about 100 cases) near 20 minutes on 2 cores. BenchmarkDotNet's default job (up to 100 iterations, adaptive) would take
    /// over half an hour for no better ratio between the three implementations, which is what the targets are about.
    /// </summary>
    public static readonly Job RepoJob = Job.Default
        .WithId("Repo")
        .WithLaunchCount(1)
        .WithWarmupCount(3)
        .WithIterationCount(15)
        .WithIterationTime(TimeInterval.FromMilliseconds(250));

    /// <summary>Builds the configuration: the repository job (unless <paramref name="args"/> names one), memory diagnoser, ratio columns.</summary>
    /// <param name="args">The command line, to see whether it names a job.</param>
    /// <returns>The configuration.</returns>
    public static IConfig Create(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        ManualConfig config = ManualConfig.Create(DefaultConfig.Instance)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumn(StatisticColumn.Median)
            .WithOrderer(new BenchmarkDotNet.Order.DefaultOrderer(BenchmarkDotNet.Order.SummaryOrderPolicy.Declared));

        // A job on the command line (--job Dry, --job short, ...) replaces ours instead of running beside it.
        bool jobOnCommandLine = args.Any(static a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
        return jobOnCommandLine ? config : config.AddJob(RepoJob.AsDefault());
    }
}
