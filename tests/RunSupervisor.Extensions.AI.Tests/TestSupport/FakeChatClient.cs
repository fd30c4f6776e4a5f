using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace RunSupervisor.Extensions.AI.Tests.TestSupport;

/// <summary>
/// An <see cref="IChatClient"/> whose behaviour each test plugs in, and which records the token and options of
/// every call it receives.
/// </summary>
internal sealed class FakeChatClient : IChatClient
{
    private readonly TaskCompletionSource<CancellationToken> _called = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Func<CancellationToken, Task<ChatResponse>> Response { get; init; } = static _ => Task.FromResult(Behaviours.Reply("done"));

    public Func<CancellationToken, IAsyncEnumerable<ChatResponseUpdate>> Stream { get; init; } = static ct => Behaviours.Updates(3, ct);

    /// <summary>Gets a task that completes with the token of the first call, once the client has been called.</summary>
    public Task<CancellationToken> Called => _called.Task;

    public int Calls { get; private set; }

    public bool Disposed { get; private set; }

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Calls++;
        _called.TrySetResult(cancellationToken);
        return Response(cancellationToken);
    }

    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Calls++;
        _called.TrySetResult(cancellationToken);
        return Stream(cancellationToken);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() => Disposed = true;
}

/// <summary>The inner-client behaviours the issue lists, for <see cref="FakeChatClient"/>.</summary>
internal static class Behaviours
{
    public static ChatResponse Reply(string text) => new(new ChatMessage(ChatRole.Assistant, text));

    public static ChatResponseUpdate Update(int i) => new(ChatRole.Assistant, $"u{i}");

    /// <summary>Completes at once.</summary>
    public static Task<ChatResponse> Completes(CancellationToken cancellationToken) => Task.FromResult(Reply("done"));

    /// <summary>Honours the token: completes (cancelled) exactly when it is cancelled, never on its own.</summary>
    public static async Task<ChatResponse> HonoursToken(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return Reply("unreachable");
    }

    /// <summary>Ignores the token: settles only when <paramref name="gate"/> does.</summary>
    public static async Task<ChatResponse> IgnoresToken(Task gate)
    {
        await gate;
        return Reply("late");
    }

    /// <summary>Yields <paramref name="count"/> updates and ends.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> Updates(int count, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < count; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return Update(i);
        }
    }

    /// <summary>Yields <paramref name="count"/> updates, then throws <paramref name="error"/>.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> UpdatesThenFaults(int count, Exception error)
    {
        await foreach (ChatResponseUpdate update in Updates(count))
        {
            yield return update;
        }

        throw error;
    }

    /// <summary>Yields <paramref name="count"/> updates, then stalls until the token is cancelled (and honours it).</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> UpdatesThenStallsHonouringToken(int count, TaskCompletionSource stalled, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (ChatResponseUpdate update in Updates(count))
        {
            yield return update;
        }

        stalled.TrySetResult();
        await Task.Delay(Timeout.Infinite, cancellationToken);
        yield return Update(-1);
    }

    /// <summary>Yields <paramref name="count"/> updates, then stalls ignoring the token until <paramref name="gate"/> completes; then yields one late update.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> UpdatesThenStallsIgnoringToken(int count, TaskCompletionSource stalled, Task gate, StreamProbe? probe = null)
    {
        try
        {
            await foreach (ChatResponseUpdate update in Updates(count))
            {
                yield return update;
            }

            stalled.TrySetResult();
            await gate;
            yield return Update(-1);
        }
        finally
        {
            probe?.MarkDisposed();
        }
    }

    /// <summary>Yields updates forever; <paramref name="honourToken"/> says whether it stops when the token is cancelled.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> Forever(bool honourToken, StreamProbe? probe = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            for (int i = 0; ; i++)
            {
                await Task.Yield();
                if (honourToken)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }

                yield return Update(i);
            }
        }
        finally
        {
            probe?.MarkDisposed();
        }
    }
}

/// <summary>Inner streams for the consumer-side concerns: cut off without an exception, slow disposal, recording the run context.</summary>
internal static class StreamBehaviours
{
    /// <summary>Yields <paramref name="count"/> updates, then waits for the token and ends quietly (<c>yield break</c>): a cut-off stream that looks finished.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> UpdatesThenEndsQuietlyOnCancel(int count, TaskCompletionSource stalled, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (ChatResponseUpdate update in Behaviours.Updates(count))
        {
            yield return update;
        }

        stalled.TrySetResult();
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (cancellationToken.Register(() => cancelled.TrySetResult()))
        {
            await cancelled.Task;
        }
    }

    /// <summary>Yields updates forever, ignoring the token; its disposal (the <c>finally</c>) waits for <paramref name="disposeGate"/>, then throws <paramref name="disposeError"/> if given.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> ForeverWithSlowDisposal(Task disposeGate, StreamProbe probe, Exception? disposeError = null)
    {
        try
        {
            for (int i = 0; ; i++)
            {
                await Task.Yield();
                yield return Behaviours.Update(i);
            }
        }
        finally
        {
            probe.MarkDisposeStarted();
            await disposeGate;
            probe.MarkDisposed();
            if (disposeError is not null)
            {
                throw disposeError;
            }
        }
    }

    /// <summary>Yields <paramref name="count"/> updates and ends, recording <see cref="RunContext.Current"/> before and after each await and in its disposal.</summary>
    public static async IAsyncEnumerable<ChatResponseUpdate> RecordsContext(int count, ConcurrentQueue<RunContext?> seen)
    {
        try
        {
            for (int i = 0; i < count; i++)
            {
                seen.Enqueue(RunContext.Current);
                await Task.Yield();
                seen.Enqueue(RunContext.Current);
                yield return Behaviours.Update(i);
            }
        }
        finally
        {
            seen.Enqueue(RunContext.Current);
        }
    }
}

/// <summary>Records whether an inner stream was disposed (its <c>finally</c> ran).</summary>
internal sealed class StreamProbe
{
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _disposeStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Disposed => _disposed.Task;

    /// <summary>Gets a task that completes once the stream's disposal has begun (for disposals that wait).</summary>
    public Task DisposeStarted => _disposeStarted.Task;

    public void MarkDisposeStarted() => _disposeStarted.TrySetResult();

    public void MarkDisposed() => _disposed.TrySetResult();
}
