using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's operations on the registry, its handles and the heartbeat policy, each checking what it can on the spot.</summary>
internal sealed partial class StressHarness
{
    private void StartOne(Random random, List<RunRecord> held, string session, bool supersede, bool tryStart)
    {
        RunStartOptions? options;
        if (_admission && random.Next(2) == 0)
        {
            // The sync starts never wait: to them Wait is Reject, and a full lane or registry refuses them.
            SessionBusyBehavior whenBusy = supersede ? SessionBusyBehavior.Supersede : random.Next(6) == 0 ? SessionBusyBehavior.Wait : SessionBusyBehavior.Reject;
            options = AdmissionOptions(random, whenBusy, mayWait: false);
        }
        else
        {
            options = random.Next(4) switch
            {
                0 => null,
                1 => new RunStartOptions { WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject, Timeout = Scaled(random.Next(50, 2000)) },
                _ => new RunStartOptions { WhenBusy = supersede ? SessionBusyBehavior.Supersede : SessionBusyBehavior.Reject },
            };
            if (options is null && supersede)
            {
                options = new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede };
            }
        }

        RunHandle? handle;
        if (tryStart)
        {
            if (!_registry.TryStart(session, out handle, options))
            {
                return;
            }
        }
        else
        {
            try
            {
                handle = _registry.Start(session, options);
            }
            catch (SessionBusyException busy)
            {
                if (busy.SessionId != session)
                {
                    Violation($"SessionBusyException names '{busy.SessionId}' for a start on '{session}'");
                }

                if (_admission && options?.Background != true)
                {
                    _busyForForeground.Enqueue(busy.RunId);
                }

                return;
            }
            catch (RunQueueFullException full) when (_admission)
            {
                CheckLaneFull(full, session, options?.Lane);
                return;
            }
        }

        Hold(random, held, RegisterRun(handle, options?.Background == true));
        CheckCapsNow();
    }

    /// <summary>
    /// Enters a run a worker obtained into the model. Its background flag is recorded before it is counted, so once the
    /// count is consistent every recorded run's flag is known.
    /// </summary>
    private RunRecord RegisterRun(RunHandle handle, bool background)
    {
        RunEntry entry = handle.Entry;
        var record = new RunRecord(handle) { IdleFloorTicks = entry.StartedAtTicks };
        if (background)
        {
            _backgroundRuns.TryAdd(handle.RunId, 0);
        }

        Interlocked.Increment(ref _started);
        if (!_records.TryAdd(handle.RunId, record))
        {
            Violation($"run id {handle.RunId} issued twice");
        }

        long runId = handle.RunId;
        _startedAt.TryAdd(runId, handle.StartedAt);
        handle.Completion.ContinueWith(c => OnCompletion(runId, c), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return record;
    }

    /// <summary>Keeps a handful of runs per worker; the oldest is released (or left behind, like a zombie whose finally never runs).</summary>
    private void Hold(Random random, List<RunRecord> held, RunRecord record)
    {
        if (held.Count >= 4)
        {
            RunRecord oldest = held[0];
            held.RemoveAt(0);
            if (random.Next(3) > 0)
            {
                oldest.Dispose();
            }
            else
            {
                _leftHeld.Enqueue(oldest);
            }
        }

        held.Add(record);
    }

    private static void Release(Random random, List<RunRecord> held, bool async)
    {
        if (held.Count == 0)
        {
            return;
        }

        int index = random.Next(held.Count);
        RunRecord record = held[index];
        held.RemoveAt(index);
        if (async)
        {
            ValueTask pending = record.DisposeAsync();
            if (!pending.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException("RunHandle.DisposeAsync is documented to complete synchronously.");
            }
        }
        else
        {
            record.Dispose();
        }

        // Dispose twice: idempotent.
        record.Dispose();
    }

    private void TryAbortWrongRunId(Random random, string session)
    {
        if (!_registry.TryGetRun(session, out RunInfo? before))
        {
            return;
        }

        long wrong = random.Next(2) == 0 ? before.RunId + 1 + random.Next(1000) : Math.Max(0, before.RunId - 1 - random.Next(1000));
        bool aborted = _registry.TryAbort(session, wrong, "stress: wrong run id");

        // A run with the wrong id can only be aborted if it has become the session's run in the meantime.
        if (aborted && wrong < before.RunId)
        {
            Violation($"TryAbort('{session}', {wrong}) aborted something although run {before.RunId} (newer) was current");
        }
    }

    private void AttachOne(Random random, List<RunRecord> held)
    {
        if (held.Count == 0)
        {
            return;
        }

        RunRecord record = held[random.Next(held.Count)];
        if (record.Provider is not null)
        {
            return;
        }

        var provider = new TaskCompletionSource<int>();
        record.Provider = provider;
        switch (random.Next(5))
        {
            case 0:
                provider.SetResult(1);
                break;
            case 1:
                provider.SetException(new InvalidOperationException($"stress provider fault (run {record.Handle.RunId})"));
                break;
            case 2:
                // Honours the abort token: settles (cancelled) when the run is aborted, timed out, superseded or evicted.
                record.Registration = record.Handle.AbortToken.Register(() => provider.TrySetCanceled());
                break;
            case 3:
                // Never settles on its own: a zombie until the end of the stress run.
                _zombies.Enqueue(provider);
                break;
            default:
                // Settles later, when this worker picks it in SettleOne.
                break;
        }

        record.Handle.Attach(provider.Task);
    }

    private static void SettleOne(Random random, List<RunRecord> held)
    {
        RunRecord? record = held.FirstOrDefault(r => r.Provider is { Task.IsCompleted: false });
        if (record is null)
        {
            return;
        }

        if (random.Next(3) == 0)
        {
            record.Provider!.TrySetException(new InvalidOperationException($"stress provider fault (run {record.Handle.RunId})"));
        }
        else
        {
            record.Provider!.TrySetResult(2);
        }
    }

    private void Resolve(Random random, string session)
    {
        var request = new QueueRequest(
            session,
            IsHeartbeat: random.Next(2) == 0,
            Mode: (QueueMode)random.Next(5),
            HasQueuedFollowups: random.Next(8) == 0,
            ResetTriggered: random.Next(6) == 0,
            ShouldFollowup: random.Next(4) == 0);
        QueueDecision decision = _policy.Resolve(request);
        if (decision.Action == QueueAction.Drop)
        {
            Interlocked.Increment(ref _dropped);
            if (!request.IsHeartbeat)
            {
                Violation($"a non-heartbeat request was dropped: {request}");
            }
        }
    }

    private void RunAsyncOne(Random random, string session)
    {
        var kind = (ProviderKind)random.Next(4);
        RunStartOptions? options = random.Next(6) == 0 ? new RunStartOptions { WhenBusy = SessionBusyBehavior.Supersede } : null;
        if (_admission)
        {
            // Never waits (a zero queue timeout): a RunAsync that waited could not be counted as started until its
            // provider ran, and a run may be evicted before the pool gets to its provider.
            options = new RunStartOptions
            {
                WhenBusy = options?.WhenBusy ?? SessionBusyBehavior.Reject,
                QueueTimeout = TimeSpan.Zero,
                Lane = RandomLane(random),
                IdleTimeout = RandomIdleTimeout(random),
            };
        }

        bool idle = options?.IdleTimeout is { } perRun ? perRun != Timeout.InfiniteTimeSpan : _options.IdleTimeout is not null;
        Task call;
        try
        {
            call = _registry.RunAsync(
                session,
                ct => kind switch
                {
                    ProviderKind.CompletesSynchronously => Task.FromResult(3),
                    ProviderKind.ThrowsSynchronously => throw new InvalidOperationException("stress provider threw before its first await"),
                    ProviderKind.HonoursToken => Task.Delay(Timeout.Infinite, ct).ContinueWith(static _ => 4, CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default),
                    _ => NewZombie(),
                },
                options);
        }
        catch (SessionBusyException)
        {
            return;
        }
        catch (RunQueueTimeoutException full) when (_admission)
        {
            // A full lane or registry with a zero queue timeout: refused at once, before any task exists.
            if (full.SessionId != session || full.Waited != TimeSpan.Zero || full.Lane != options?.Lane)
            {
                Violation($"RunAsync on '{session}' (lane {options?.Lane ?? "default"}) with a zero queue timeout failed with RunQueueTimeoutException ('{full.SessionId}', lane {full.Lane ?? "default"}, waited {full.Waited})");
            }

            Count("RunAsync refused by a cap");
            return;
        }

        Interlocked.Increment(ref _started);
        _runAsyncCalls.Enqueue((call, kind, idle));
    }

    private Task<int> NewZombie()
    {
        var provider = new TaskCompletionSource<int>();
        Interlocked.Increment(ref _pendingRunAsyncZombies);
        _zombies.Enqueue(provider);
        return provider.Task;
    }

    private async Task DrainAndCheckAsync(TimeSpan timeout, DrainOptions options)
    {
        DrainResult result = await _registry.DrainAsync(timeout, options).ConfigureAwait(false);
        string[] all = [.. result.Drained, .. result.Aborted, .. result.Evicted, .. result.StillRunning];
        if (all.Length != all.Distinct(StringComparer.Ordinal).Count())
        {
            Violation($"a drain listed a session twice: {string.Join(",", all)}");
        }

        if (!options.AbortRemaining && result.Aborted.Count > 0)
        {
            Violation("a drain without AbortRemaining aborted runs");
        }

        if (!options.CancelWaiting && result.CancelledStarts.Count > 0)
        {
            Violation("a drain without CancelWaiting cancelled waiting starts");
        }

        Interlocked.Add(ref _drainCancelledReported, result.CancelledStarts.Count);

        if (result.IsComplete != (all.Length == result.Drained.Count))
        {
            Violation("DrainResult.IsComplete disagrees with its lists");
        }
    }

    private void Track(Task task) => _waits.Enqueue(task);

    /// <summary>A duration given in thousandths of the registry's run timeout (milliseconds on the fake clock).</summary>
    private TimeSpan Scaled(int thousandths) => TimeSpan.FromTicks(Math.Max(1, _options.RunTimeout.Ticks * thousandths / 1000));
}
