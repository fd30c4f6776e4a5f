// Benchmarks (BenchmarkDotNet) and the harness modes (scale, eviction, starvation, admission, lease CPU) for
// RunSupervisor. See README.md for what each measures and the exact commands. The first argument picks a harness mode; anything else goes to BenchmarkDotNet.
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using RunSupervisor.Benchmarks.Benchmarks;
using RunSupervisor.Benchmarks.Harness;

string mode = args.Length > 0 ? args[0] : string.Empty;
Func<HarnessArguments, int>? harness = mode switch
{
    "scale" => ScaleHarness.Run,
    "evict" => EvictionHarness.Run,
    "chart" => ScaleChart.Run,
    "alloc" => AllocationProfile.Run,
    "profile" => ProfileLoop.Run,
    "starve" => StarvationHarness.Run,
    "admit" => AdmissionHarness.Run,
    "lease-cpu" => LeaseCpuHarness.Run,
    _ => null,
};

if (harness is not null)
{
    try
    {
        return harness(new HarnessArguments(args[1..]));
    }
    catch (ArgumentException ex)
    {
        Console.Error.WriteLine(ex.Message);
        Console.Error.WriteLine("Modes: scale | evict | chart | alloc | profile | starve | admit | lease-cpu, or BenchmarkDotNet arguments (--filter '*', --list flat, --job Dry). See README.md.");
        return 64;
    }
}

IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly).Run(args, BenchmarkConfig.Create(args));

// Non-zero when a benchmark failed or was invalid, so a scripted run notices.
return summaries.Any(static s => s.HasCriticalValidationErrors || s.Reports.Any(static r => !r.Success)) ? 1 : 0;
