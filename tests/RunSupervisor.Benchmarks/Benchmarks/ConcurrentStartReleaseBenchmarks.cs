using BenchmarkDotNet.Attributes;
using RunSupervisor.Benchmarks.Implementations;

namespace RunSupervisor.Benchmarks.Benchmarks;

/// <summary>
/// Case (d): throughput of case (a) on two threads at once, each on its own session, with <see cref="ActiveRuns"/>
/// runs active. The reported time is per start + release (<see cref="OperationsPerInvoke"/> operations per call);
/// on 2 cores a perfectly parallel implementation reports half of its single-thread time.
/// </summary>
/// <remarks>
/// One thread is the benchmark's own, the other a thread-pool work item started per invocation; its start costs a
/// few microseconds, spread over <see cref="OperationsPerThread"/> operations (under 1 %) and the same for all three.
/// </remarks>
[MemoryDiagnoser]
public class ConcurrentStartReleaseBenchmarks : ThreeWayBenchmark
{
    /// <summary>Start + release operations per thread per invocation.</summary>
    public const int OperationsPerThread = 2_000;

    /// <summary>Operations per invocation, both threads together.</summary>
    public const int OperationsPerInvoke = 2 * OperationsPerThread;

    private const string SessionA = "bench-session-d0";
    private const string SessionB = "bench-session-d1";

    /// <summary>Floor, two threads.</summary>
    [Benchmark(Baseline = true, Description = "Floor", OperationsPerInvoke = OperationsPerInvoke)]
    public void Floor() => OnTwoThreads(static (self, session) => self.FloorSupervisor.StartAndRelease(session));

    /// <summary>Peer, two threads.</summary>
    [Benchmark(Description = "Peer (Polly)", OperationsPerInvoke = OperationsPerInvoke)]
    public void Peer() => OnTwoThreads(static (self, session) => self.PollyPeer.StartAndRelease(session));

    /// <summary>RunSupervisor, two threads.</summary>
    [Benchmark(Description = "RunSupervisor", OperationsPerInvoke = OperationsPerInvoke)]
    public void Registry() => OnTwoThreads(static (self, session) => self.ActiveRegistry.Start(session).Dispose());

    private static void Loop(ConcurrentStartReleaseBenchmarks self, Action<ConcurrentStartReleaseBenchmarks, string> operation, string session)
    {
        for (int i = 0; i < OperationsPerThread; i++)
        {
            operation(self, session);
        }
    }

    private void OnTwoThreads(Action<ConcurrentStartReleaseBenchmarks, string> operation)
    {
        Task other = Task.Factory.StartNew(
            static state =>
            {
                var (self, op) = ((ConcurrentStartReleaseBenchmarks, Action<ConcurrentStartReleaseBenchmarks, string>))state!;
                Loop(self, op, SessionB);
            },
            (this, operation),
            CancellationToken.None,
            TaskCreationOptions.None,
            TaskScheduler.Default);
        Loop(this, operation, SessionA);
        other.Wait();
    }
}
