using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Testing;

namespace RunSupervisor.Tests.TestSupport;

/// <summary>Small helpers shared by <c>RunHandleTests</c> and <c>WatchdogTests</c>.</summary>
internal static class WatchdogTestHelpers
{
    /// <summary>A fixture whose registry uses the given options (the fixture's defaults for the rest).</summary>
    public static RegistryFixture CreateFixture(
        TimeSpan? timeout = null,
        TimeSpan? grace = null,
        TimeSpan? maxRunDuration = null,
        int? maxAbandonedRuns = null)
    {
        var options = new RunSupervisorOptions
        {
            RunTimeout = timeout ?? RegistryFixture.Timeout,
            GracePeriod = grace ?? RegistryFixture.Grace,
        };

        if (maxRunDuration is TimeSpan max)
        {
            options.MaxRunDuration = max;
        }

        if (maxAbandonedRuns is int cap)
        {
            options.MaxAbandonedRuns = cap;
        }

        return new RegistryFixture(options);
    }

    /// <summary>
    /// Moves the fake clock to <paramref name="target"/>. With a <paramref name="step"/>, in several Advance calls no
    /// longer than it (each timer then fires close to its due time); without one, in a single jump.
    /// </summary>
    public static void AdvanceTo(this FakeTimeProvider time, DateTimeOffset target, TimeSpan? step = null)
    {
        DateTimeOffset now = time.GetUtcNow();
        if (target < now)
        {
            throw new InvalidOperationException($"The test moves time backwards: now {now:O}, target {target:O}.");
        }

        if (step is not TimeSpan s || s <= TimeSpan.Zero)
        {
            time.Advance(target - now);
            return;
        }

        while (now < target)
        {
            TimeSpan delta = target - now < s ? target - now : s;
            time.Advance(delta);
            now = time.GetUtcNow();
        }
    }

    /// <summary>The fixture's log records of <paramref name="eventName"/> that name run <paramref name="runId"/>.</summary>
    public static IReadOnlyList<FakeLogRecord> LogsFor(this RegistryFixture fixture, string eventName, long runId)
        => [.. fixture.LogsWithEvent(eventName).Where(r => r.GetStructuredStateValue("RunId") == runId.ToString(CultureInfo.InvariantCulture))];

    /// <summary>The RunEnded notifications the fixture recorded for one run.</summary>
    public static IReadOnlyList<(RunEndedEventArgs Args, bool StillRegistered)> EndedFor(this RegistryFixture fixture, long runId)
    {
        lock (fixture.Ended)
        {
            return [.. fixture.Ended.Where(e => e.Args.RunId == runId)];
        }
    }

    /// <summary>A structured-state value as the log record holds it (invariant culture).</summary>
    public static string Invariant(object value) => Convert.ToString(value, CultureInfo.InvariantCulture)!;

    /// <summary>Whether <paramref name="logged"/> is <paramref name="original"/> or wraps it (a task's AggregateException).</summary>
    public static bool CarriesException(Exception? logged, Exception original)
        => logged is not null
            && (ReferenceEquals(logged, original)
                || (logged is AggregateException aggregate && aggregate.Flatten().InnerExceptions.Any(e => ReferenceEquals(e, original))));
}

/// <summary>
/// Records <see cref="TaskScheduler.UnobservedTaskException"/> notifications while alive. The event is process-wide
/// and tests run in parallel, so callers look for their own unique exception message only.
/// </summary>
internal sealed class UnobservedTaskExceptionProbe : IDisposable
{
    private readonly List<string> _messages = [];

    public UnobservedTaskExceptionProbe() => TaskScheduler.UnobservedTaskException += OnUnobserved;

    /// <summary>Makes every unreachable task's finalizer run, which is when unobserved exceptions are reported.</summary>
    public static void CollectGarbage()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>
    /// Creates a faulted task with <paramref name="message"/> and drops it unobserved: the control that shows the
    /// probe can see an unobserved exception at all. Not inlined, so no local of the caller keeps the task alive.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void DropUnobservedFault(string message) => _ = Task.FromException(new InvalidOperationException(message));

    public bool Saw(string message)
    {
        lock (_messages)
        {
            return _messages.Contains(message);
        }
    }

    public void Dispose() => TaskScheduler.UnobservedTaskException -= OnUnobserved;

    private void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        lock (_messages)
        {
            _messages.AddRange(e.Exception.Flatten().InnerExceptions.Select(x => x.Message));
        }
    }
}
