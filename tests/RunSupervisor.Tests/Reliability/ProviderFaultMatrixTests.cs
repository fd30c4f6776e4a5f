using RunSupervisor.Tests.TestSupport;
using static RunSupervisor.Tests.TestSupport.AsyncTestHelpers;

namespace RunSupervisor.Tests.Reliability;

/// <summary>
/// The provider fault matrix. Every way a provider can behave, run through
/// <see cref="ActiveRunRegistry.RunAsync{T}(string, Func{CancellationToken, Task{T}}, RunStartOptions?, CancellationToken)"/>
/// and through <see cref="ActiveRunRegistry.Start(string, RunStartOptions?)"/> + <see cref="RunHandle.Attach(Task)"/>,
/// against the expected end reason, exception and abandoned-ledger state written in <see cref="Table"/>.
/// </summary>
/// <remarks>
/// Time is a <see cref="FakeTimeProvider"/> (timeout 10 min, grace 30 s) advanced from the test thread; the one
/// provider that blocks its thread is held by a <see cref="ManualResetEventSlim"/> the test releases at the end.
/// </remarks>
public sealed class ProviderFaultMatrixTests
{
    private const string Session = "matrix";

    /// <summary>What the abandoned ledger shows once the run has ended.</summary>
    public enum Ledger
    {
        /// <summary>Empty: the provider settled before (or as) the run ended.</summary>
        Empty,

        /// <summary>Holds the run while its provider is pending; empty once the test lets the provider settle.</summary>
        HoldsRunUntilProviderSettles,

        /// <summary>Holds the run for good: the provider never settles.</summary>
        HoldsRun,
    }

    /// <summary>How the run is started.</summary>
    public enum Path
    {
        /// <summary><c>registry.RunAsync(session, provider)</c>.</summary>
        RunAsync,

        /// <summary><c>registry.Start(session)</c>, the host calls the provider with <c>AbortToken</c>, then <c>run.Attach(task)</c>.</summary>
        StartAttach,
    }

    /// <summary>
    /// The matrix. Per row and path: the run's end reason (<see langword="null"/>: no run is started), the exception
    /// (RunAsync: what its task throws; Start + Attach: what <c>Attach</c> throws), whether it is the provider's own
    /// instance, and the ledger state after the end.
    /// </summary>
    public static readonly IReadOnlyDictionary<(string Row, Path Path), Expectation> Table = new Dictionary<(string, Path), Expectation>
    {
        [("completes synchronously", Path.RunAsync)] = new(RunEndReason.Completed, null, Ledger.Empty),
        [("completes synchronously", Path.StartAttach)] = new(RunEndReason.Completed, null, Ledger.Empty),
        [("completes asynchronously", Path.RunAsync)] = new(RunEndReason.Completed, null, Ledger.Empty),
        [("completes asynchronously", Path.StartAttach)] = new(RunEndReason.Completed, null, Ledger.Empty),
        [("throws before its first await", Path.RunAsync)] = new(RunEndReason.Faulted, typeof(ProviderFailure), Ledger.Empty, SameInstance: true),
        [("throws before its first await", Path.StartAttach)] = new(RunEndReason.Faulted, null, Ledger.Empty),
        [("throws synchronously (not an async method)", Path.RunAsync)] = new(RunEndReason.Faulted, typeof(ProviderFailure), Ledger.Empty, SameInstance: true),
        [("throws synchronously (not an async method)", Path.StartAttach)] = new(RunEndReason.Faulted, null, Ledger.Empty),
        [("throws later", Path.RunAsync)] = new(RunEndReason.Faulted, typeof(ProviderFailure), Ledger.Empty, SameInstance: true),
        [("throws later", Path.StartAttach)] = new(RunEndReason.Faulted, null, Ledger.Empty),
        [("throws OperationCanceledException on abort", Path.RunAsync)] = new(RunEndReason.Aborted, typeof(TaskCanceledException), Ledger.Empty),
        [("throws OperationCanceledException on abort", Path.StartAttach)] = new(RunEndReason.Aborted, null, Ledger.Empty),
        [("honours the token at the deadline", Path.RunAsync)] = new(RunEndReason.TimedOut, typeof(RunTimedOutException), Ledger.Empty),
        [("honours the token at the deadline", Path.StartAttach)] = new(RunEndReason.TimedOut, null, Ledger.Empty),
        [("ignores abort but completes within grace", Path.RunAsync)] = new(RunEndReason.TimedOut, null, Ledger.Empty),
        [("ignores abort but completes within grace", Path.StartAttach)] = new(RunEndReason.TimedOut, null, Ledger.Empty),
        [("ignores abort and completes after eviction", Path.RunAsync)] = new(RunEndReason.ForceEvicted, typeof(RunEvictedException), Ledger.HoldsRunUntilProviderSettles),
        [("ignores abort and completes after eviction", Path.StartAttach)] = new(RunEndReason.ForceEvicted, null, Ledger.HoldsRunUntilProviderSettles),
        [("ignores abort and faults after eviction", Path.RunAsync)] = new(RunEndReason.ForceEvicted, typeof(RunEvictedException), Ledger.HoldsRunUntilProviderSettles),
        [("ignores abort and faults after eviction", Path.StartAttach)] = new(RunEndReason.ForceEvicted, null, Ledger.HoldsRunUntilProviderSettles),
        [("never completes", Path.RunAsync)] = new(RunEndReason.ForceEvicted, typeof(RunEvictedException), Ledger.HoldsRun),
        [("never completes", Path.StartAttach)] = new(RunEndReason.ForceEvicted, null, Ledger.HoldsRun),
        [("blocks its thread longer than deadline + grace", Path.RunAsync)] = new(RunEndReason.ForceEvicted, typeof(RunEvictedException), Ledger.HoldsRunUntilProviderSettles),
        [("blocks its thread longer than deadline + grace", Path.StartAttach)] = new(RunEndReason.ForceEvicted, null, Ledger.HoldsRunUntilProviderSettles),
        [("returns a null Task", Path.RunAsync)] = new(RunEndReason.Faulted, typeof(InvalidOperationException), Ledger.Empty),

        // Attach(null) is refused and changes nothing: the run goes on and ends when the host disposes its handle.
        [("returns a null Task", Path.StartAttach)] = new(RunEndReason.Completed, typeof(ArgumentNullException), Ledger.Empty),

        // A null delegate cannot reach Attach (the host would have nothing to call), so it has a RunAsync row only.
        [("the delegate itself is null", Path.RunAsync)] = new(null, typeof(ArgumentNullException), Ledger.Empty),
        [("the caller's token is already cancelled", Path.RunAsync)] = new(null, typeof(TaskCanceledException), Ledger.Empty),

        // With Start + Attach the host passes its cancelled token on: the provider's task is cancelled at once.
        [("the caller's token is already cancelled", Path.StartAttach)] = new(RunEndReason.Aborted, null, Ledger.Empty),
    };

    public static TheoryData<string, Path> Rows()
    {
        var data = new TheoryData<string, Path>();
        foreach ((string row, Path path) in Table.Keys)
        {
            data.Add(row, path);
        }

        return data;
    }

    [Fact]
    public void Table_CoversEveryProviderBehaviourOnBothPathsWhereApplicable()
    {
        Table.Keys.Select(k => k.Row).Distinct().Should().HaveCount(15);
        Table.Keys.Count(k => k.Path == Path.RunAsync).Should().Be(15);
        Table.Keys.Count(k => k.Path == Path.StartAttach).Should().Be(14, "only the null delegate has no Start + Attach form");
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Provider_BehavesAsRow_RunEndsWithExpectedReasonExceptionAndLedger(string row, Path path)
    {
        Expectation expected = Table[(row, path)];
        using var f = new RegistryFixture();
        using var scenario = new Scenario(f, row);

        Outcome outcome = path == Path.RunAsync ? await scenario.ViaRunAsync() : await scenario.ViaStartAttach();

        // Exception.
        if (expected.Exception is null)
        {
            outcome.Exception.Should().BeNull("row '{0}' via {1} throws nothing", row, path);
        }
        else
        {
            outcome.Exception.Should().BeOfType(expected.Exception, "row '{0}' via {1}", row, path);
            if (expected.SameInstance)
            {
                outcome.Exception.Should().BeSameAs(scenario.Failure, "the provider's own exception instance propagates");
            }
        }

        // End reason, exactly once, after the entry was gone.
        if (expected.Reason is RunEndReason reason)
        {
            f.Ended.Should().ContainSingle().Which.Should().Match<(RunEndedEventArgs Args, bool StillRegistered)>(e => e.Args.Reason == reason && !e.StillRegistered);
        }
        else
        {
            f.Ended.Should().BeEmpty("no run is started for row '{0}'", row);
            f.LogsWithEvent("RunStarted").Should().BeEmpty();
            scenario.Invoked.Should().BeFalse("the provider is not invoked when no run starts");
        }

        f.Registry.IsActive(Session).Should().BeFalse();
        f.Registry.ActiveCount.Should().Be(0);

        // Ledger.
        switch (expected.Ledger)
        {
            case Ledger.Empty:
                f.Registry.GetAbandonedRuns().Should().BeEmpty();
                break;
            case Ledger.HoldsRun:
                outcome.LedgerAtEnd.Should().ContainSingle().Which.RunId.Should().Be(outcome.RunId);
                f.Registry.GetAbandonedRuns().Should().ContainSingle("a provider that never settles stays quarantined");
                break;
            case Ledger.HoldsRunUntilProviderSettles:
                outcome.LedgerAtEnd.Should().ContainSingle().Which.RunId.Should().Be(outcome.RunId);
                await scenario.SettleLateAsync();
                // The blocked provider's task settles on the thread pool; the ledger entry and its log line follow.
                SpinWait.SpinUntil(() => f.LogsFor("AbandonedRunSettled", outcome.RunId).Count > 0, TestTime.HangGuard)
                    .Should().BeTrue("the run leaves the ledger, with a log line, once its provider settles");
                f.Registry.GetAbandonedRuns().Should().BeEmpty();
                f.Registry.AbandonedCount.Should().Be(0);
                f.LogsFor("AbandonedRunSettled", outcome.RunId).Should().ContainSingle();
                break;
        }

        // A new run on the session is possible whatever the provider did.
        using RunHandle next = f.Registry.Start(Session);
        next.IsCurrent.Should().BeTrue();
    }

    /// <summary>One row's expectations.</summary>
    public sealed record Expectation(RunEndReason? Reason, Type? Exception, Ledger Ledger, bool SameInstance = false);

    /// <summary>The provider's own failure, so the matrix can tell it from the registry's exceptions.</summary>
    public sealed class ProviderFailure : Exception
    {
        public ProviderFailure()
            : base("provider failure")
        {
        }

        public ProviderFailure(string message)
            : base(message)
        {
        }

        public ProviderFailure(string message, Exception inner)
            : base(message, inner)
        {
        }
    }

    private sealed record Outcome(Exception? Exception, long RunId, IReadOnlyList<AbandonedRunInfo> LedgerAtEnd);

    /// <summary>The provider for one row and the steps that drive it: time, aborts, late settlement.</summary>
    private sealed class Scenario : IDisposable
    {
        private readonly RegistryFixture _f;
        private readonly string _row;
        private readonly TaskCompletionSource<int> _pending = new();
        private readonly TaskCompletionSource _invoked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ManualResetEventSlim _block = new(false);
        private Task? _hostThread;

        public Scenario(RegistryFixture f, string row)
        {
            _f = f;
            _row = row;
        }

        public ProviderFailure Failure { get; } = new("provider failure for the matrix");

        public bool Invoked => _invoked.Task.IsCompleted;

        private TimeSpan Timeout => RegistryFixture.Timeout;

        private TimeSpan Grace => RegistryFixture.Grace;

        public async Task<Outcome> ViaRunAsync()
        {
            using var callerCancelled = new CancellationTokenSource();
            CancellationToken callerToken = CancellationToken.None;
            if (_row == "the caller's token is already cancelled")
            {
                await callerCancelled.CancelAsync();
                callerToken = callerCancelled.Token;
            }

            Func<CancellationToken, Task<int>>? provider = _row == "the delegate itself is null" ? null : Provider;
            Task<int> call;
            try
            {
                call = _f.Registry.RunAsync(Session, provider!, cancellationToken: callerToken);
            }
            catch (ArgumentNullException ex)
            {
                return new Outcome(ex, 0, []);
            }

            long runId = _f.Registry.TryGetRun(Session, out RunInfo? info) ? info.RunId : 0;
            if (!call.IsCompleted || runId != 0)
            {
                // The provider is invoked on the thread pool; drive the scenario once it has been called.
                await _invoked.Task.Guard();
            }

            if (_row == "blocks its thread longer than deadline + grace")
            {
                // RunAsync returned at once although the provider is blocked; the watchdog evicts on time.
                call.IsCompleted.Should().BeFalse();
                await DriveAsync();
                RunEvictedException evicted = (await FluentActions.Awaiting(() => call.Guard()).Should().ThrowExactlyAsync<RunEvictedException>()).Which;
                _block.IsSet.Should().BeFalse("RunAsync completed without waiting for the blocked thread");
                evicted.Age.Should().Be(Timeout + Grace, "the eviction happened exactly at deadline + grace");
                return new Outcome(evicted, runId, _f.Registry.GetAbandonedRuns());
            }

            await DriveAsync();
            Exception? thrown = null;
            try
            {
                int result = await call.Guard();
                result.Should().Be(Result, "RunAsync returns the provider's result");
            }
            catch (Exception ex) when (ex is not TimeoutException || ex is RunTimedOutException or RunEvictedException)
            {
                thrown = ex;
            }

            return new Outcome(thrown, runId, _f.Registry.GetAbandonedRuns());
        }

        public async Task<Outcome> ViaStartAttach()
        {
            RunHandle run = _f.Registry.Start(Session);
            Exception? attachFailure = null;
            if (_row == "blocks its thread longer than deadline + grace")
            {
                // The host calls the provider on its own thread, which the provider blocks; the watchdog does not care.
                _hostThread = Task.Factory.StartNew(() => run.Attach(Provider(run.AbortToken)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                await _invoked.Task.Guard();
                await DriveAsync();
                (await run.Completion.Guard()).Should().Be(RunEndReason.ForceEvicted);
                _block.IsSet.Should().BeFalse("the run was evicted while the host thread is still blocked");
                return new Outcome(null, run.RunId, _f.Registry.GetAbandonedRuns());
            }

            Task<int>? task;
            if (_row == "the caller's token is already cancelled")
            {
                using var callerCancelled = new CancellationTokenSource();
                await callerCancelled.CancelAsync();
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(run.AbortToken, callerCancelled.Token);
                task = Provider(linked.Token);
            }
            else
            {
                try
                {
                    task = Provider(run.AbortToken);
                }
                catch (ProviderFailure ex)
                {
                    // A delegate that throws instead of returning a task: the host reports it as a faulted task.
                    task = Task.FromException<int>(ex);
                }
            }

            try
            {
                run.Attach(task!);
            }
            catch (ArgumentNullException ex)
            {
                attachFailure = ex;

                // Nothing was half-applied: the run goes on, untouched, until the host releases it.
                run.IsCurrent.Should().BeTrue();
                run.Status.Should().Be(RunStatus.Running);
                _f.Ended.Should().BeEmpty();
                await run.DisposeAsync();
            }

            await DriveAsync();
            await run.Completion.Guard();
            return new Outcome(attachFailure, run.RunId, _f.Registry.GetAbandonedRuns());
        }

        /// <summary>Lets a provider that outlived its eviction settle (or the blocked one go).</summary>
        public async Task SettleLateAsync()
        {
            switch (_row)
            {
                case "ignores abort and completes after eviction":
                    _pending.SetResult(Result);
                    break;
                case "ignores abort and faults after eviction":
                    _pending.SetException(Failure);
                    break;
                case "blocks its thread longer than deadline + grace":
                    _block.Set();
                    if (_hostThread is not null)
                    {
                        await _hostThread.Guard();
                    }

                    break;
            }
        }

        public void Dispose()
        {
            _block.Set();
            _hostThread?.Wait(TestTime.HangGuard);
            _block.Dispose();
        }

        private const int Result = 42;

        private Task<int> Provider(CancellationToken token)
        {
            _invoked.TrySetResult();
            switch (_row)
            {
                case "completes synchronously":
                    return Task.FromResult(Result);
                case "throws before its first await":
                    return ThrowsBeforeFirstAwaitAsync();
                case "throws synchronously (not an async method)":
                    throw Failure;
                case "throws OperationCanceledException on abort":
                case "honours the token at the deadline":
                    return HonourAsync(token);
                case "the caller's token is already cancelled":
                    return token.IsCancellationRequested ? Task.FromCanceled<int>(token) : Task.FromResult(Result);
                case "blocks its thread longer than deadline + grace":
                    // A real blocking wait, bounded by the event the test sets at the end (the guard only turns a
                    // broken test into a failure).
                    _block.Wait(TestTime.HangGuard * 3);
                    return Task.FromResult(Result);
                case "returns a null Task":
                    return null!;
                default:
                    return _pending.Task;
            }
        }

        private async Task<int> ThrowsBeforeFirstAwaitAsync()
        {
            if (_row.Length > 0)
            {
                throw Failure;
            }

            await Task.Yield();
            return Result;
        }

        private static async Task<int> HonourAsync(CancellationToken token)
        {
            await Task.Delay(System.Threading.Timeout.Infinite, token);
            return Result;
        }

        /// <summary>The time, abort and settle steps of the row, from the test thread.</summary>
        private Task DriveAsync()
        {
            switch (_row)
            {
                case "completes asynchronously":
                    _pending.SetResult(Result);
                    break;
                case "throws later":
                    _pending.SetException(Failure);
                    break;
                case "throws OperationCanceledException on abort":
                    _f.Registry.TryAbort(Session).Should().BeTrue();
                    break;
                case "honours the token at the deadline":
                    _f.Time.Advance(Timeout);
                    break;
                case "ignores abort but completes within grace":
                    _f.Time.Advance(Timeout);
                    _f.Time.Advance(Grace - TestTime.Tick);
                    _pending.SetResult(Result);
                    break;
                case "ignores abort and completes after eviction":
                case "ignores abort and faults after eviction":
                case "never completes":
                case "blocks its thread longer than deadline + grace":
                    _f.Time.Advance(Timeout);
                    _f.Registry.IsActive(Session).Should().BeTrue("the grace period has not passed");
                    _f.Time.Advance(Grace - TestTime.Tick);
                    _f.Registry.IsActive(Session).Should().BeTrue("one tick before deadline + grace");
                    _f.Time.Advance(TestTime.Tick);
                    _f.Registry.IsActive(Session).Should().BeFalse("evicted exactly at deadline + grace");
                    break;
            }

            return Task.CompletedTask;
        }
    }
}
