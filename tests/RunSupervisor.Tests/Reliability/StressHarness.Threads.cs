using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's threads: the clock, which steps fake time on the workers' demand, and the workers, which pick seeded random operations.</summary>
internal sealed partial class StressHarness
{
    private void DriveClock(int totalRounds, Barrier barrier)
    {
        var random = new Random(DeriveSeed(_settings.Seed, -1));
        for (int round = 0; round < totalRounds && !_stop; round++)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _workersDone) < _settings.Workers && !_stop)
            {
                // One step per request: fake time moves with the work done, not with how fast this thread spins, so
                // the mix of outcomes does not depend on the machine's speed or load.
                if (_fake is not null && Volatile.Read(ref _clockDemand) > 0)
                {
                    Interlocked.Decrement(ref _clockDemand);
                    _fake.Advance(TimeSpan.FromMilliseconds(random.Next(1, (int)MaxClockStep.TotalMilliseconds + 1)));
                    spin = default;
                }
                else
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }

            barrier.SignalAndWait();
        }

        // Leave the barrier, so that workers finishing their rounds after a failure are not left waiting for the clock.
        barrier.RemoveParticipant();
    }

    private void Work(int worker, int totalRounds, Barrier barrier)
    {
        // Two streams: which operation on which session comes from the first, fixed by the seed; the operations' arguments
        // come from the second, whose draws may depend on what the worker holds (runs admitted from the queue arrive when
        // the registry admits them), so only they can differ between replays of a seed.
        var operations = new Random(DeriveSeed(_settings.Seed, worker));
        var arguments = new Random(DeriveSeed(_settings.Seed, worker + 1000));
        var state = new WorkerState(worker);
        for (int round = 0; round < totalRounds; round++)
        {
            for (int i = 0; i < _settings.OperationsPerRound && !_stop; i++)
            {
                if (Interlocked.Increment(ref _operations) > _settings.TotalOperations)
                {
                    Interlocked.Decrement(ref _operations);
                    break;
                }

                while (_inbox[worker].TryDequeue(out RunRecord? admitted))
                {
                    Hold(arguments, state.Held, admitted);
                }

                DoOne(operations, arguments, state);
                if (i % OperationsPerClockStep == 0)
                {
                    Interlocked.Increment(ref _clockDemand);
                }
            }

            Interlocked.Increment(ref _workersDone);
            barrier.SignalAndWait();
        }

        foreach (RunRecord record in state.Held)
        {
            _leftHeld.Enqueue(record);
        }
    }

    private void DoOne(Random operations, Random random, WorkerState state)
    {
        List<RunRecord> held = state.Held;
        string session = Sessions[operations.Next(Sessions.Length)];
        switch (operations.Next(_admission ? 27 : 20))
        {
            case 0:
            case 1:
                StartOne(random, held, session, supersede: false, tryStart: false);
                break;
            case 2:
                StartOne(random, held, session, supersede: false, tryStart: true);
                break;
            case 3:
                // Supersede half as often as a plain start: with four sessions it would otherwise end most runs.
                StartOne(random, held, session, supersede: random.Next(2) == 0, tryStart: random.Next(2) == 0);
                break;
            case 4:
                Release(random, held, async: false);
                break;
            case 5:
                Release(random, held, async: true);
                break;
            case 6:
                // TryAbort with the right run id (a held run's, or whichever run the session has now).
                if (held.Count > 0 && random.Next(2) == 0)
                {
                    RunRecord r = held[random.Next(held.Count)];
                    _registry.TryAbort(r.Handle.SessionId, r.Handle.RunId, "stress");
                }
                else if (_registry.TryGetRun(session, out RunInfo? info))
                {
                    _registry.TryAbort(session, info.RunId, "stress");
                }

                break;
            case 7:
                TryAbortWrongRunId(random, session);
                break;
            case 8:
                if (held.Count > 0)
                {
                    RunRecord r = held[random.Next(held.Count)];
                    bool wasRunning = r.Handle.Status == RunStatus.Running;
                    bool extended = r.Handle.TryExtendDeadline(Scaled(random.Next(1, 1500)));
                    if (extended && !wasRunning)
                    {
                        Violation($"run {r.Handle.RunId}: TryExtendDeadline succeeded although the run was {r.Handle.Status} before the call");
                    }
                }

                break;
            case 9:
            case 10:
                AttachOne(random, held);
                break;
            case 11:
                SettleOne(random, held);
                break;
            case 12:
                if (held.Count > 0 && random.Next(2) == 0)
                {
                    held[random.Next(held.Count)].Handle.Abort("stress");
                }
                else
                {
                    Resolve(random, session);
                }

                break;
            case 13:
            case 14:
                Resolve(random, session);
                break;
            case 15:
                Track(_registry.WaitForRunEndAsync(session, Scaled(random.Next(0, 2000))));
                break;
            case 16:
                if (random.Next(8) == 0)
                {
                    var options = new DrainOptions { AbortRemaining = random.Next(2) == 0, ForceEvictOverdue = random.Next(2) == 0, CancelWaiting = _admission && random.Next(3) == 0 };
                    Track(DrainAndCheckAsync(Scaled(random.Next(0, 1000)), options));
                }
                else
                {
                    Resolve(random, session);
                }

                break;
            case 17:
            case 18:
            case 19:
                RunAsyncOne(random, session);
                break;
            case 20:
            case 21:
            case 22:
                StartAsyncOne(random, state, session);
                break;
            case 23:
                CancelOneWaiting(random, state);
                break;
            case 24:
            case 25:
                ReportProgressOne(random, held);
                break;
            default:
                CheckCapsNow();
                break;
        }
    }
}
