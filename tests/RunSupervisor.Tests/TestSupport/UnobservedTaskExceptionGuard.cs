using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("RunSupervisor.Tests.TestSupport.UnobservedTaskExceptionGuard+Framework", "RunSupervisor.Tests")]

namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// The suite-wide guard: fails the test run if <see cref="TaskScheduler.UnobservedTaskException"/> fired for
/// anything but a deliberate control fault.
/// </summary>
/// <remarks>
/// <para>xunit v2 has no assembly fixtures, so the guard hooks in at both ends of the run. A module initializer
/// subscribes before any test code runs. A custom test framework (<see cref="Framework"/>, registered by the
/// assembly attribute above) runs the whole assembly as usual and then, in
/// <see cref="TestAssemblyRunner{TTestCase}.BeforeTestAssemblyFinishedAsync"/>, forces every unreachable task to be
/// finalized (a faulted task reports its unobserved exception from its finalizer) and adds a failure to the
/// assembly's aggregator if anything unexpected was reported. xunit reports that as a "Test Assembly Cleanup
/// Failure": an error in the run, so <c>dotnet test</c> exits non-zero even though every test passed.</para>
/// <para>Some tests drop a fault unobserved on purpose, as the control that proves a probe can see one
/// (<see cref="UnobservedTaskExceptionProbe.DropUnobservedFault(string)"/>, messages "control failure …"). Those,
/// and any message registered with <see cref="ExpectDeliberate(string)"/>, are not failures.</para>
/// </remarks>
public static class UnobservedTaskExceptionGuard
{
    /// <summary>The message prefix of the control faults <see cref="UnobservedTaskExceptionProbe"/> drops on purpose.</summary>
    public const string ControlFaultPrefix = "control failure ";

    private static readonly ConcurrentDictionary<string, byte> Deliberate = new(StringComparer.Ordinal);
    private static readonly ConcurrentQueue<string> Unexpected = new();
    private static int _installed;
    private static int _deliberateSeen;

    /// <summary>Gets a value indicating whether the guard is subscribed (it is from module load on).</summary>
    public static bool IsInstalled => Volatile.Read(ref _installed) != 0;

    /// <summary>Gets how many deliberate (expected) unobserved faults the guard has seen.</summary>
    public static int DeliberateSeen => Volatile.Read(ref _deliberateSeen);

    /// <summary>Gets a snapshot of the unexpected unobserved exceptions seen so far (type and message).</summary>
    public static IReadOnlyList<string> UnexpectedSoFar => [.. Unexpected];

    /// <summary>Declares that an unobserved fault with exactly <paramref name="message"/> is dropped on purpose.</summary>
    /// <param name="message">The exception message; make it unique (a Guid).</param>
    public static void ExpectDeliberate(string message) => Deliberate.TryAdd(message, 0);

    /// <summary>Subscribes the guard; idempotent. Runs when the test assembly is loaded.</summary>
#pragma warning disable CA2255 // A module initializer is exactly what is needed here: subscribe before any test runs.
    [ModuleInitializer]
#pragma warning restore CA2255
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
        {
            TaskScheduler.UnobservedTaskException += OnUnobserved;
        }
    }

    /// <summary>Finalizes every unreachable task, so that pending unobserved-exception reports are raised now.</summary>
    public static void FlushFinalizers()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>The failure for the run, or <see langword="null"/> when nothing unexpected went unobserved.</summary>
    /// <param name="unexpected">The unexpected reports.</param>
    /// <returns>An exception that names every report, or <see langword="null"/>.</returns>
    public static Exception? CreateFailure(IReadOnlyCollection<string> unexpected)
        => unexpected.Count == 0
            ? null
            : new InvalidOperationException(
                $"TaskScheduler.UnobservedTaskException fired {unexpected.Count} time(s) during the test run: a faulted task was "
                + "dropped without its exception being observed. " + string.Join(" | ", unexpected));

    /// <summary>Whether an exception reported as unobserved is one of the deliberate control faults.</summary>
    /// <param name="exception">One inner exception of the report.</param>
    /// <returns><see langword="true"/> if it was dropped on purpose.</returns>
    public static bool IsDeliberate(Exception exception)
        => Deliberate.ContainsKey(exception.Message)

            // The probe's control fault is made with Task.FromException: never thrown, so it has no stack trace.
            || (exception.StackTrace is null && exception.Message.StartsWith(ControlFaultPrefix, StringComparison.Ordinal));

    private static void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        foreach (Exception inner in e.Exception.Flatten().InnerExceptions)
        {
            if (IsDeliberate(inner))
            {
                Interlocked.Increment(ref _deliberateSeen);
            }
            else
            {
                Unexpected.Enqueue($"{inner.GetType().FullName}: {inner.Message}");
            }
        }
    }

    /// <summary>The xunit v2 test framework that runs the assembly and then applies the guard.</summary>
    public sealed class Framework : XunitTestFramework
    {
        /// <summary>Initializes a new instance of the <see cref="Framework"/> class.</summary>
        /// <param name="messageSink">The diagnostic message sink.</param>
        public Framework(IMessageSink messageSink)
            : base(messageSink) => Install();

        /// <inheritdoc/>
        protected override ITestFrameworkExecutor CreateExecutor(AssemblyName assemblyName)
            => new Executor(assemblyName, SourceInformationProvider, DiagnosticMessageSink);
    }

    private sealed class Executor : XunitTestFrameworkExecutor
    {
        public Executor(AssemblyName assemblyName, ISourceInformationProvider sourceInformationProvider, IMessageSink diagnosticMessageSink)
            : base(assemblyName, sourceInformationProvider, diagnosticMessageSink)
        {
        }

        protected override async void RunTestCases(IEnumerable<IXunitTestCase> testCases, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        {
            using var runner = new AssemblyRunner(TestAssembly, testCases, DiagnosticMessageSink, executionMessageSink, executionOptions);
            await runner.RunAsync();
        }
    }

    private sealed class AssemblyRunner : XunitTestAssemblyRunner
    {
        public AssemblyRunner(ITestAssembly testAssembly, IEnumerable<IXunitTestCase> testCases, IMessageSink diagnosticMessageSink, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
            : base(testAssembly, testCases, diagnosticMessageSink, executionMessageSink, executionOptions)
        {
        }

        protected override async Task BeforeTestAssemblyFinishedAsync()
        {
            await base.BeforeTestAssemblyFinishedAsync();
            FlushFinalizers();
            Exception? failure = CreateFailure(UnexpectedSoFar.ToArray());
            if (failure is not null)
            {
                Console.Error.WriteLine(failure.Message);
                Aggregator.Add(failure);
            }
        }
    }
}
