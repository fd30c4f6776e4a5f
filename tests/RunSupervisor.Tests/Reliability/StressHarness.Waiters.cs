namespace RunSupervisor.Tests.Reliability;

/// <summary>The stress harness's model of waiting starts and of what each worker holds.</summary>
internal sealed partial class StressHarness
{
    /// <summary>A start that waited for admission (its StartAsync returned before it was admitted or failed).</summary>
    private sealed class Waiter
    {
        private const int Waiting = 0;
        private const int Admitted = 1;
        private const int Failed = 2;

        private readonly TimeSpan? _timeout;
        private int _state;

        public Waiter(int worker, string session, RunStartOptions options, TimeSpan queueTimeout, CancellationTokenSource? cancellation)
        {
            Worker = worker;
            Session = session;
            Lane = options.Lane;
            Background = options.Background;
            WhenBusy = options.WhenBusy;
            QueueTimeout = queueTimeout;
            Cancellation = cancellation;
            _timeout = options.Timeout;
        }

        public int Worker { get; }

        public string Session { get; }

        public string? Lane { get; }

        public bool Background { get; }

        public SessionBusyBehavior WhenBusy { get; }

        public TimeSpan QueueTimeout { get; }

        public CancellationTokenSource? Cancellation { get; }

        /// <summary>Gets or sets the arrival number, taken under the harness's arrival lock.</summary>
        public long Sequence { get; set; }

        public long CalledAtTicks { get; set; }

        public long ReturnedAtTicks { get; set; }

        /// <summary>Gets or sets the stamp taken just before the harness cancelled the start's token; 0 if it did not.</summary>
        public long CancelStamp { get; set; }

        /// <summary>
        /// Gets or sets a lower bound of the last run id issued when the start was known to be ready for a slot (it headed
        /// an idle session's queue right after its call); -1 if that was not known.
        /// </summary>
        public long ReadyRunFloor { get; set; } = -1;

        public long RunId { get; private set; }

        public Exception? Failure { get; private set; }

        /// <summary>Gets the stamp taken when the outcome was observed.</summary>
        public long SettledStamp { get; private set; }

        /// <summary>Gets or sets a value indicating whether the caller's token took the start out of the queue.</summary>
        public bool CallerCancelled { get; set; }

        /// <summary>Gets or sets a value indicating whether a newer start pushed this one out of its full session queue.</summary>
        public bool PushedOut { get; set; }

        public bool IsWaiting => Volatile.Read(ref _state) == Waiting;

        public bool IsAdmitted => Volatile.Read(ref _state) == Admitted;

        public TimeSpan RunTimeout(RunSupervisorOptions options) => _timeout ?? options.RunTimeout;

        /// <summary>Records the outcome; the state is written last, so whoever sees it settled sees the rest.</summary>
        public void Settle(long runId, Exception? failure, long stamp)
        {
            RunId = runId;
            Failure = failure;
            SettledStamp = stamp;
            Volatile.Write(ref _state, failure is null ? Admitted : Failed);
        }
    }

    /// <summary>What one worker holds: its runs, and its waiting starts it may cancel.</summary>
    private sealed class WorkerState
    {
        public WorkerState(int index) => Index = index;

        public int Index { get; }

        public List<RunRecord> Held { get; } = [];

        public List<Waiter> Cancellable { get; } = [];
    }
}
