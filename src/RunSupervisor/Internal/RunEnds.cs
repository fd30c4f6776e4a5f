using System.Globalization;

namespace RunSupervisor;

/// <summary>
/// The one place that decides how a run ended, says why in words, and turns that into what a caller of a supervised
/// call sees. <c>RunAsync</c>, the chat-client middleware and the agent middleware all map ends through here, so the
/// same end never reads differently in two places.
/// </summary>
internal static class RunEnds
{
    /// <summary>The abort text when <see cref="RunHandle.Abort(string?)"/> is called without one.</summary>
    public const string HandleAbortText = "RunHandle.Abort was called";

    /// <summary>The abort text when <see cref="ActiveRunRegistry.TryAbort(string, long?, string?)"/> is called without one.</summary>
    public const string RegistryAbortText = "ActiveRunRegistry.TryAbort was called";

    /// <summary>The abort text when the caller's cancellation token aborts a supervised call.</summary>
    public const string CallerCancelledText = "the caller's cancellation token was cancelled";

    /// <summary>The abort text when a streaming consumer stopped early and the inner stream did not settle within the grace period.</summary>
    public const string ConsumerStoppedText = "the consumer stopped the stream early and the inner stream did not settle within the grace period";

    /// <summary>The end's detail of runs ended by the registry's disposal.</summary>
    public const string DisposedText = "the registry was disposed";

    /// <summary>Decides the reason a run leaves with; under the gate, where <paramref name="entry"/>'s state is stable.</summary>
    /// <param name="entry">The run.</param>
    /// <param name="trigger">What made it leave.</param>
    /// <returns>The reason.</returns>
    public static RunEndReason Decide(RunEntry entry, EndTrigger trigger)
    {
        switch (trigger)
        {
            case EndTrigger.Superseded or EndTrigger.Preempted:
                return RunEndReason.Superseded;
            case EndTrigger.Disposed or EndTrigger.Withdrawn:
                return RunEndReason.Aborted;
            case EndTrigger.LeaseLost:
                return RunEndReason.LeaseLost;
            case EndTrigger.Evicted:
                // A provider that settled in time but whose continuation has not run yet is not a zombie: it ends with
                // the outcome it really had.
                return entry.ProviderTask is { IsCompleted: true } && entry.Status == RunStatus.Aborting
                    ? AbortedReason(entry)
                    : RunEndReason.ForceEvicted;
        }

        if (entry.Status != RunStatus.Running)
        {
            return AbortedReason(entry);
        }

        if (trigger == EndTrigger.Released)
        {
            return RunEndReason.Completed;
        }

        return entry.ProviderTask!.Status switch
        {
            TaskStatus.RanToCompletion => RunEndReason.Completed,
            TaskStatus.Canceled => RunEndReason.Aborted,
            _ => RunEndReason.Faulted,
        };
    }

    /// <summary>
    /// Says why the run ended, in words; <see langword="null"/> for a plain completion. Under the gate, with the end's
    /// reason, so that whoever sees the run ended sees its detail too (plain formatting: nothing foreign runs).
    /// </summary>
    /// <param name="entry">The leaving run, its abort cause and abort text still in place.</param>
    /// <param name="reason">The reason <see cref="Decide(RunEntry, EndTrigger)"/> gave.</param>
    /// <param name="trigger">What made it leave.</param>
    /// <param name="replacementRunId">The run that superseded it, for <see cref="EndTrigger.Superseded"/>.</param>
    /// <returns>The detail.</returns>
    public static string? Describe(RunEntry entry, RunEndReason reason, EndTrigger trigger, long replacementRunId)
    {
        switch (reason)
        {
            case RunEndReason.Completed:
                return null;
            case RunEndReason.Superseded:
                return trigger == EndTrigger.Preempted
                    ? string.Create(CultureInfo.InvariantCulture, $"preempted by run {replacementRunId}: a foreground start on a background run")
                    : string.Create(CultureInfo.InvariantCulture, $"superseded by run {replacementRunId}");
            case RunEndReason.Faulted:
                return entry.ProviderTask?.Exception?.InnerException is { } fault
                    ? string.Create(CultureInfo.InvariantCulture, $"the provider faulted: {fault.GetType().Name}: {fault.Message}")
                    : "the provider faulted";
            case RunEndReason.LeaseLost:
                return "the lease was lost";
            case RunEndReason.ForceEvicted:
                return string.Create(CultureInfo.InvariantCulture, $"evicted: the provider did not settle within {TimeSpan.FromTicks(entry.GraceTicks)} of the abort ({AbortDetail(entry)})");
        }

        if (trigger == EndTrigger.Disposed)
        {
            return DisposedText;
        }

        return entry.AbortCause == AbortCause.None ? "the provider's task was cancelled" : AbortDetail(entry);
    }

    /// <summary>
    /// Turns a supervised call's end into the caller's exception, or <see langword="null"/> when the provider's own
    /// outcome (its result, its exception) stands.
    /// </summary>
    /// <param name="run">The run.</param>
    /// <param name="providerTask">The provider's task (or the stream's settle task); it may still be pending, or <see langword="null"/> if never started.</param>
    /// <param name="callerToken">The caller's token: its cancellation wins over the run's reason.</param>
    /// <returns>The exception to throw, or <see langword="null"/>.</returns>
    public static Exception? ToCallerException(RunHandle run, Task? providerTask, CancellationToken callerToken)
        => ToCallerException(run.Entry, providerTask, callerToken);

    /// <inheritdoc cref="ToCallerException(RunHandle, Task?, CancellationToken)"/>
    /// <param name="entry">The run.</param>
    /// <param name="providerTask">The provider's task; <see langword="null"/> when the provider was never invoked.</param>
    /// <param name="callerToken">The caller's token: its cancellation wins over the run's reason.</param>
    public static Exception? ToCallerException(RunEntry entry, Task? providerTask, CancellationToken callerToken)
    {
        RunEndReason reason = entry.EndReason;
        bool settled = providerTask is { IsCompleted: true };
        bool providerCancelled = settled && (providerTask!.IsCanceled || providerTask.Exception?.InnerException is OperationCanceledException);
        if (callerToken.IsCancellationRequested && (!settled || providerCancelled || reason is RunEndReason.ForceEvicted or RunEndReason.Superseded or RunEndReason.LeaseLost))
        {
            // The caller asked to stop: it hears its own cancellation, whatever the run's reason in events and logs.
            return new OperationCanceledException(EndedMessage(entry, byCaller: true, settled), callerToken);
        }

        switch (reason)
        {
            case RunEndReason.ForceEvicted:
                return new RunEvictedException(entry.SessionId, entry.RunId, entry.Age(entry.EndedAtTicks));
            case RunEndReason.Superseded:
                return new OperationCanceledException(EndedMessage(entry, byCaller: false, settled), entry.Token);
            case RunEndReason.LeaseLost:
                // Whatever the provider produced, the session may already be another host's: its work is not to be trusted.
                return new Leasing.RunLeaseLostException(entry.SessionId, entry.RunId, entry.FencingToken, entry.Detail, entry.Token);
        }

        if (!settled)
        {
            // Only the registry's disposal ends a supervised run before its provider settles.
            return new OperationCanceledException(EndedMessage(entry, byCaller: false, settled: false), entry.Token);
        }

        if (providerCancelled && reason is RunEndReason.TimedOut or RunEndReason.Stalled)
        {
            TimeSpan allowed = TimeSpan.FromTicks(reason == RunEndReason.Stalled ? entry.IdleTicks : entry.DeadlineTicks - entry.StartedAtTicks);
            return new RunTimedOutException(entry.SessionId, entry.RunId, allowed, reason, providerTask!.Exception?.InnerException ?? CanceledFrom(providerTask));
        }

        return null;
    }

    private static RunEndReason AbortedReason(RunEntry entry) => entry.AbortCause switch
    {
        AbortCause.Deadline => RunEndReason.TimedOut,
        AbortCause.Idle => RunEndReason.Stalled,
        _ => RunEndReason.Aborted,
    };

    private static string AbortDetail(RunEntry entry) => entry.AbortCause switch
    {
        AbortCause.Deadline => string.Create(CultureInfo.InvariantCulture, $"deadline passed after {TimeSpan.FromTicks(entry.DeadlineTicks - entry.StartedAtTicks)}"),
        AbortCause.Idle => string.Create(CultureInfo.InvariantCulture, $"no progress for {TimeSpan.FromTicks(entry.IdleTicks)}"),
        _ => entry.Detail ?? HandleAbortText,
    };

    private static string EndedMessage(RunEntry entry, bool byCaller, bool settled)
    {
        string detail = entry.Detail ?? "completed";
        if (byCaller)
        {
            return string.Create(CultureInfo.InvariantCulture, $"The caller cancelled run {entry.RunId} for session '{entry.SessionId}'; it ended {entry.EndReason} ({detail}).");
        }

        return entry.EndReason == RunEndReason.Superseded
            ? string.Create(CultureInfo.InvariantCulture, $"Run {entry.RunId} for session '{entry.SessionId}' was {detail}.")
            : string.Create(CultureInfo.InvariantCulture, $"Run {entry.RunId} for session '{entry.SessionId}' ended {entry.EndReason} ({detail}){(settled ? "." : " before its provider settled.")}");
    }

    /// <summary>The cancellation a cancelled task rethrows when awaited.</summary>
    public static OperationCanceledException? CanceledFrom(Task task)
    {
        try
        {
            task.GetAwaiter().GetResult();
            return null;
        }
        catch (OperationCanceledException ex)
        {
            return ex;
        }
    }
}
