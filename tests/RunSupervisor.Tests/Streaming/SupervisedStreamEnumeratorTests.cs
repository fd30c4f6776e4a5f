using System.Runtime.CompilerServices;
using RunSupervisor.Tests.TestSupport;

namespace RunSupervisor.Tests.Streaming;

/// <summary>
/// <see cref="SupervisedStreamEnumerator{T}"/> on a scripted inner stream, at the core: the start and its cancellation,
/// the context the inner calls run in, and how the inner stream's failures become the run's end. The adapters' suites
/// drive the same enumerator through a chat client and an agent.
/// </summary>
public sealed class SupervisedStreamEnumeratorTests
{
    private const string Session = "stream-session";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly AsyncLocal<string?> ConsumerValue = new();

    [Fact]
    public async Task Current_BeforeTheFirstMove_ThrowsInvalidOperationException()
    {
        using var f = new RegistryFixture();
        await using IAsyncEnumerator<int> updates = Stream(f, _ => Updates(1)).GetAsyncEnumerator();

        Func<int> act = () => updates.Current;

        act.Should().Throw<InvalidOperationException>().WithMessage("*MoveNextAsync*");
    }

    [Fact]
    public async Task MoveNextAsync_OpeningTheInnerStreamThrows_TheConsumerGetsThatErrorAndTheRunEndsFaulted()
    {
        using var f = new RegistryFixture();
        await using IAsyncEnumerator<int> updates = Stream(f, _ => throw new InvalidOperationException("open failed")).GetAsyncEnumerator();

        Func<Task> act = async () => await updates.MoveNextAsync().AsTask().WaitAsync(Bound);

        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("open failed");
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
        f.Registry.IsActive(Session).Should().BeFalse();
    }

    [Fact]
    public async Task MoveNextAsync_InnerMoveAndDisposalBothFail_TheMoveErrorIsTheOutcome()
    {
        using var f = new RegistryFixture();
        var inner = new FailingEnumerator(new InvalidOperationException("move failed"), new InvalidOperationException("dispose failed"));
        await using IAsyncEnumerator<int> updates = Stream(f, _ => inner).GetAsyncEnumerator();

        Func<Task> act = async () => await updates.MoveNextAsync().AsTask().WaitAsync(Bound);

        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("move failed");
        inner.Disposed.Should().BeTrue();
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Faulted);
    }

    [Fact]
    public async Task MoveNextAsync_ConsumerSetAnAsyncLocalBeforeTheFirstMove_TheInnerStreamSeesItAndTheRun()
    {
        using var f = new RegistryFixture();
        string? seen = null;
        long seenRun = 0;
        ConsumerValue.Value = "set by the consumer";
        await using IAsyncEnumerator<int> updates = Stream(f, _ =>
        {
            seen = ConsumerValue.Value;
            seenRun = RunContext.Current?.RunId ?? 0;
            return Updates(1);
        }).GetAsyncEnumerator();

        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();

        seen.Should().Be("set by the consumer", "the inner calls run in the consumer's context as captured at the first move");
        seenRun.Should().Be(f.Registry.GetActiveRuns().Should().ContainSingle().Subject.RunId);
    }

    [Fact]
    public async Task DisposeAsync_ConsumerStopsBetweenUpdates_TheInnerStreamIsDisposedAsTheRunAndTheRunEndsCompleted()
    {
        using var f = new RegistryFixture();
        long disposedInRun = -1;
        IAsyncEnumerator<int> updates = Stream(f, _ => Updates(5, onDispose: () => disposedInRun = RunContext.Current?.RunId ?? 0)).GetAsyncEnumerator();
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();
        long runId = f.Registry.GetActiveRuns().Should().ContainSingle().Subject.RunId;

        await updates.DisposeAsync().AsTask().WaitAsync(Bound);

        disposedInRun.Should().Be(runId, "the inner stream's clean-up is the run's code, with RunContext.Current set");
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DisposeAsync_CallerCancelsWhileTheInnerStreamIsStillDisposing_TheRunStillEndsCompleted(bool streamToken)
    {
        using var f = new RegistryFixture();
        using var cts = new CancellationTokenSource();
        var inner = new SlowDisposalEnumerator();
        IAsyncEnumerator<int> updates = Stream(f, _ => inner, token: streamToken ? cts.Token : default)
            .GetAsyncEnumerator(streamToken ? default : cts.Token);
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();
        Task stopping = updates.DisposeAsync().AsTask();

        // The consumer has stopped: its token no longer speaks for the run, which ends as its disposal does.
        await cts.CancelAsync();
        inner.FinishDisposal();
        await stopping.WaitAsync(Bound);

        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed);
    }

    [Fact]
    public async Task MoveNextAsync_WaitingForAdmissionWithBothTokens_CancellingTheEnumeratorTokenThrowsWithThatTokenAndNothingRuns()
    {
        using var f = new RegistryFixture();
        using RunHandle holder = f.Registry.Start(Session);
        using var streamCts = new CancellationTokenSource();
        using var enumeratorCts = new CancellationTokenSource();
        bool opened = false;
        await using IAsyncEnumerator<int> updates = Stream(f, _ => { opened = true; return Updates(1); }, Waiting, streamCts.Token).GetAsyncEnumerator(enumeratorCts.Token);
        Task<bool> move = updates.MoveNextAsync().AsTask();
        f.Registry.GetQueuedCount(Session).Should().Be(1);

        await enumeratorCts.CancelAsync();

        OperationCanceledException cancelled = (await FluentActions.Awaiting(() => move.WaitAsync(Bound)).Should().ThrowAsync<OperationCanceledException>()).Which;
        cancelled.CancellationToken.Should().Be(enumeratorCts.Token, "the consumer hears its own token, not the link between its two");
        cancelled.Message.Should().Contain("never ran");
        opened.Should().BeFalse();
        f.Registry.GetQueuedCount(Session).Should().Be(0);
        holder.IsCurrent.Should().BeTrue();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MoveNextAsync_WaitingForAdmissionWithOneToken_CancellingItEndsTheWait(bool streamToken)
    {
        using var f = new RegistryFixture();
        using RunHandle holder = f.Registry.Start(Session);
        using var cts = new CancellationTokenSource();
        await using IAsyncEnumerator<int> updates = Stream(f, _ => Updates(1), Waiting, streamToken ? cts.Token : default)
            .GetAsyncEnumerator(streamToken ? default : cts.Token);
        Task<bool> move = updates.MoveNextAsync().AsTask();
        f.Registry.GetQueuedCount(Session).Should().Be(1);

        await cts.CancelAsync();

        OperationCanceledException cancelled = (await FluentActions.Awaiting(() => move.WaitAsync(Bound)).Should().ThrowAsync<OperationCanceledException>()).Which;
        cancelled.CancellationToken.Should().Be(cts.Token);
        f.Registry.GetQueuedCount(Session).Should().Be(0);
    }

    [Fact]
    public async Task MoveNextAsync_RunEndsAsTheMoveBegins_TheConsumerIsAnsweredThoughTheInnerMoveHangs()
    {
        // The move reports progress (a clock read on the consumer's thread) after it has decided to move on and before
        // it publishes its wait: the hook supersedes the run right there, and the registry hands the end over on this
        // same thread while no wait is published yet.
        var time = new ClockWithHook(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var registry = new ActiveRunRegistry(new RunSupervisorOptions { RunTimeout = RegistryFixture.Timeout, GracePeriod = RegistryFixture.Grace }, time);
        var ended = new List<RunEndReason>();
        registry.RunEnded += (_, e) => ended.Add(e.Reason);
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        IAsyncEnumerator<int> updates = new ScriptedStream(registry, Session, null, default, _ => FirstThenHang(hang.Task)).GetAsyncEnumerator();
        try
        {
            (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();
            time.OnNextReadOnThisThread(() => registry.Start(Session, new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede }).Dispose());

            Func<Task> act = async () => await updates.MoveNextAsync().AsTask().WaitAsync(Bound);

            // The inner move never settles: only the run's end can answer the consumer, and it must.
            await act.Should().ThrowAsync<OperationCanceledException>();
            ended.Should().Equal(RunEndReason.Superseded, RunEndReason.Completed);
        }
        finally
        {
            hang.SetResult();
            await updates.DisposeAsync();
        }
    }

    [Fact]
    public async Task DisposeAsync_WhileAMoveIsPending_StopsTheInnerStreamAndTheRunEndsCompletedAtOnce()
    {
        // `await using` after the consumer's own per-update timeout gave up on a pending move.
        using var f = new RegistryFixture();
        var stalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var innerToken = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        IAsyncEnumerator<int> updates = Stream(f, ct =>
        {
            innerToken.TrySetResult(ct);
            return OneThenWaitsForItsToken(stalled, ct);
        }).GetAsyncEnumerator();
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();
        Task<bool> pending = updates.MoveNextAsync().AsTask();
        await stalled.Task.WaitAsync(Bound);

        await updates.DisposeAsync().AsTask().WaitAsync(Bound);

        (await innerToken.Task).IsCancellationRequested.Should().BeTrue("the consumer stopped: the inner stream is told to stop");
        f.Registry.IsActive(Session).Should().BeFalse("a disposed stream does not hold its session until the deadline");
        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Completed, "the consumer stopping is no failure, and never a timeout");
        (await pending.WaitAsync(Bound)).Should().BeFalse();
    }

    [Fact]
    public async Task DisposeAsync_WhileAMoveIsPendingOnAnInnerStreamThatIgnoresItsToken_ReturnsAfterTheGracePeriodAndTheRunEndsAborted()
    {
        using var f = new RegistryFixture();
        var hang = new TaskCompletionSource();
        IAsyncEnumerator<int> updates = Stream(f, _ => FirstThenHang(hang.Task)).GetAsyncEnumerator();
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();
        Task<bool> pending = updates.MoveNextAsync().AsTask();

        Task disposing = updates.DisposeAsync().AsTask();
        await Task.Delay(50);
        disposing.IsCompleted.Should().BeFalse("the consumer waits up to the grace period for the inner stream to stop");
        f.Time.Advance(RegistryFixture.Grace);
        await disposing.WaitAsync(Bound);

        f.Ended.Should().ContainSingle().Which.Args.Reason.Should().Be(RunEndReason.Aborted);
        f.Ended[0].Args.Detail.Should().Be(RunEnds.ConsumerStoppedText);
        await FluentActions.Awaiting(() => pending.WaitAsync(Bound)).Should().ThrowAsync<OperationCanceledException>();
        hang.SetResult();
    }

    [Fact]
    public async Task DisposeAsync_WhileTheFirstMoveWaitsForAdmission_TheInnerStreamIsNeverOpened()
    {
        using var f = new RegistryFixture();
        RunHandle holder = f.Registry.Start(Session);
        bool opened = false;
        IAsyncEnumerator<int> updates = Stream(f, ct =>
        {
            opened = true;
            return Updates(1, cancellationToken: ct);
        }, Waiting).GetAsyncEnumerator();
        Task<bool> pending = updates.MoveNextAsync().AsTask();
        f.Registry.GetQueuedCount(Session).Should().Be(1);

        await updates.DisposeAsync().AsTask().WaitAsync(Bound);
        holder.Dispose();

        (await pending.WaitAsync(Bound)).Should().BeFalse("the consumer left before its run was admitted: nothing is delivered");
        opened.Should().BeFalse("the enumerator was disposed before its run was admitted");
        f.Registry.IsActive(Session).Should().BeFalse("a disposed enumerator does not hold the session");
    }

    [Fact]
    public async Task DisposeAsync_ConsumerChangedAnAsyncLocalAfterTheFirstMove_TheInnerDisposalSeesTheContextOfTheFirstMove()
    {
        using var f = new RegistryFixture();
        string? seenInDisposal = "not disposed";
        ConsumerValue.Value = "at the first move";
        IAsyncEnumerator<int> updates = Stream(f, ct => Updates(int.MaxValue, onDispose: () => seenInDisposal = ConsumerValue.Value, ct)).GetAsyncEnumerator();
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();

        ConsumerValue.Value = "changed by the consumer later";
        await updates.DisposeAsync().AsTask().WaitAsync(Bound);

        seenInDisposal.Should().Be("at the first move", "the disposal is an inner call and runs in the context captured at the first move");
    }

    [Fact]
    public async Task TryAbort_FromAnotherFlowBetweenUpdates_TheInnerDisposalSeesTheConsumersContextNotTheAborters()
    {
        using var f = new RegistryFixture();
        string? seenInDisposal = "not disposed";
        var disposed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ConsumerValue.Value = "consumer";
        await using IAsyncEnumerator<int> updates = Stream(f, ct => Updates(int.MaxValue, onDispose: () =>
        {
            seenInDisposal = ConsumerValue.Value;
            disposed.TrySetResult();
        }, ct)).GetAsyncEnumerator();
        (await updates.MoveNextAsync().AsTask().WaitAsync(Bound)).Should().BeTrue();

        await Task.Run(() =>
        {
            ConsumerValue.Value = "another request that aborted the run";
            f.Registry.TryAbort(Session).Should().BeTrue();
        });
        await disposed.Task.WaitAsync(Bound);

        seenInDisposal.Should().Be("consumer");
    }

    /// <summary>One update, then a move that waits for its token (and says so through <paramref name="stalled"/>).</summary>
    private static async IAsyncEnumerable<int> OneThenWaitsForItsToken(TaskCompletionSource stalled, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        yield return 1;
        stalled.TrySetResult();
        await Task.Delay(Timeout.Infinite, cancellationToken);
        yield return 2;
    }

    private static RunStartOptions Waiting => new() { WhenBusy = SessionBusyBehavior.Wait };

    /// <summary>One update, then a move that ignores its token and settles only when <paramref name="hang"/> does.</summary>
    private static async IAsyncEnumerable<int> FirstThenHang(Task hang)
    {
        yield return 1;
        await hang;
    }

    private static ScriptedStream Stream(RegistryFixture f, Func<CancellationToken, IAsyncEnumerable<int>> open, RunStartOptions? options = null, CancellationToken token = default)
        => new(f.Registry, Session, options, token, open);

    private static async IAsyncEnumerable<int> Updates(int count, Action? onDispose = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            for (int i = 0; i < count; i++)
            {
                await Task.Yield();
                cancellationToken.ThrowIfCancellationRequested();
                yield return i;
            }
        }
        finally
        {
            onDispose?.Invoke();
        }
    }

    private sealed class ScriptedStream(ActiveRunRegistry registry, string sessionId, RunStartOptions? options, CancellationToken token, Func<CancellationToken, IAsyncEnumerable<int>> open)
        : SupervisedStream<int>(registry, sessionId, options, token)
    {
        protected internal override IAsyncEnumerable<int> OpenInner(CancellationToken stopToken) => open(stopToken);
    }

    /// <summary>A fake clock that runs an action at its next timestamp read on the arming thread, before answering it.</summary>
    private sealed class ClockWithHook(DateTimeOffset start) : FakeTimeProvider(start)
    {
        private Action? _hook;
        private int _thread;

        public void OnNextReadOnThisThread(Action hook)
        {
            _thread = Environment.CurrentManagedThreadId;
            Volatile.Write(ref _hook, hook);
        }

        public override long GetTimestamp()
        {
            if (Environment.CurrentManagedThreadId == Volatile.Read(ref _thread) && Interlocked.Exchange(ref _hook, null) is { } hook)
            {
                hook();
            }

            return base.GetTimestamp();
        }
    }

    /// <summary>An inner stream with one update whose disposal waits until the test lets it finish.</summary>
    private sealed class SlowDisposalEnumerator : IAsyncEnumerable<int>, IAsyncEnumerator<int>
    {
        private readonly TaskCompletionSource _disposal = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _moved;

        public int Current => 1;

        public IAsyncEnumerator<int> GetAsyncEnumerator(CancellationToken cancellationToken = default) => this;

        public ValueTask<bool> MoveNextAsync()
        {
            bool first = !_moved;
            _moved = true;
            return ValueTask.FromResult(first);
        }

        public ValueTask DisposeAsync() => new(_disposal.Task);

        public void FinishDisposal() => _disposal.SetResult();
    }

    /// <summary>An inner stream whose first move fails, and whose disposal fails too.</summary>
    private sealed class FailingEnumerator(Exception moveError, Exception disposeError) : IAsyncEnumerable<int>, IAsyncEnumerator<int>
    {
        public bool Disposed { get; private set; }

        public int Current => throw new InvalidOperationException("no update");

        public IAsyncEnumerator<int> GetAsyncEnumerator(CancellationToken cancellationToken = default) => this;

        public ValueTask<bool> MoveNextAsync() => ValueTask.FromException<bool>(moveError);

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.FromException(disposeError);
        }
    }
}
