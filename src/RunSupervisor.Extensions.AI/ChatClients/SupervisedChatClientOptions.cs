using Microsoft.Extensions.AI;

namespace RunSupervisor.Extensions.AI;

/// <summary>
/// Options of a <see cref="SupervisedChatClient"/>. They are read once, when the client is created; later changes
/// to this object do not reach it.
/// </summary>
public sealed class SupervisedChatClientOptions
{
    /// <summary>
    /// Gets or sets the function that picks the session a chat call belongs to; <see langword="null"/> (the default)
    /// uses <see cref="ChatOptions.ConversationId"/>.
    /// </summary>
    /// <remarks>
    /// When set, it alone decides (return <c>options?.ConversationId</c> to fall back to the default). A call whose
    /// session id is <see langword="null"/> passes through unsupervised: it is counted on the metric
    /// <c>runsupervisor.chat.unsupervised_calls</c> and logged at Debug. Any other value must be a valid session id
    /// (1 to <see cref="ActiveRunRegistry.MaxSessionIdLength"/> characters, not only white space), or the call fails
    /// with <see cref="ArgumentException"/>. It is called once per call, on the calling thread, and must not throw.
    /// </remarks>
    public Func<IEnumerable<ChatMessage>, ChatOptions?, string?>? SessionIdSelector { get; set; }

    /// <summary>
    /// Gets or sets what a call does when its session already has an active run: fail with
    /// <see cref="SessionBusyException"/> (<see cref="SessionBusyBehavior.Reject"/>, the default), supersede it
    /// (<see cref="SessionBusyBehavior.Supersede"/>), or wait for it to end (<see cref="SessionBusyBehavior.Wait"/>, at most
    /// <see cref="RunStartOptions.QueueTimeout"/>; streaming calls wait in their first <c>MoveNextAsync</c>).
    /// </summary>
    public SessionBusyBehavior BusyBehavior { get; set; } = SessionBusyBehavior.Reject;

    /// <summary>
    /// Gets or sets per-run overrides (timeout, grace period, queue timeout, idle timeout, background, lane) for every
    /// supervised call of this client; <see langword="null"/> (the default) uses the registry's options. Validated when
    /// the client is built. Each streamed update is progress for <see cref="RunStartOptions.IdleTimeout"/>. Its
    /// <see cref="RunStartOptions.WhenBusy"/> must be left at <see cref="SessionBusyBehavior.Reject"/>: use <see cref="BusyBehavior"/>.
    /// </summary>
    public RunStartOptions? RunStartOptions { get; set; }
}
