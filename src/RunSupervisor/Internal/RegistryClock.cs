namespace RunSupervisor;

/// <summary>
/// The registry's clock: a monotonic tick count from the injected <see cref="TimeProvider"/>, and wall-clock instants
/// derived from it. Every deadline, eviction instant and duration is a difference of these ticks, so a wall-clock
/// step never delays or hastens an abort or an eviction.
/// </summary>
/// <remarks>
/// <para>On <see cref="TimeProvider.System"/> the monotonic clock is the system tick (<see cref="Environment.TickCount64"/>),
/// the clock the runtime's own timers count in, rather than the high-resolution timestamp: a few nanoseconds per read
/// instead of tens on a virtual machine, where the timestamp goes through the hypervisor's clock page, and a start and a
/// release each read it once. So deadlines, eviction instants, progress and durations have the tick's resolution (1-16
/// ms, by platform), as a <see cref="CancellationTokenSource"/> timeout does. Any other provider (a fake clock in tests)
/// is read through <see cref="TimeProvider.GetTimestamp"/> and stays exact.</para>
/// <para>One clock read per run start is the budget: reading the wall clock as well would double the cost of a start
/// on a virtual machine, where each read goes through the hypervisor's clock page. So a start's wall-clock instant is
/// the monotonic reading plus an offset, and the offset is re-read from <see cref="TimeProvider.GetUtcNow"/> at most
/// once per <see cref="WallClockRefresh"/> of monotonic time: after a wall-clock step (NTP, a resumed laptop), start
/// times follow the new wall clock within that interval.</para>
/// <para>Thread-safe without a lock. Call <see cref="ToWallClock(long)"/> only outside the registry's lock: it may call
/// the <see cref="TimeProvider"/>, which may run due timer callbacks on this thread.</para>
/// </remarks>
internal sealed class RegistryClock
{
    /// <summary>How much monotonic time may pass before the wall-clock offset is read again.</summary>
    public static readonly TimeSpan WallClockRefresh = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _timeProvider;

    // On the system clock, the origin is a system tick count (milliseconds); otherwise a provider timestamp.
    private readonly bool _systemClock;
    private readonly long _origin;

    // The offset and when to read it again, swapped as one object so readers never pair an offset with another's instant.
    private WallAnchor _anchor;

    public RegistryClock(TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
        _systemClock = ReferenceEquals(timeProvider, TimeProvider.System);
        _origin = _systemClock ? Environment.TickCount64 : timeProvider.GetTimestamp();
        _anchor = ReadAnchor();
    }

    public TimeProvider TimeProvider => _timeProvider;

    /// <summary>
    /// The coarsest resolution of the system tick on any platform (about 15.6 ms on Windows by default, 1-10 ms on
    /// Linux): how much earlier than it happened the clock may read an instant.
    /// </summary>
    public static readonly TimeSpan SystemTickResolution = TimeSpan.FromMilliseconds(16);

    /// <summary>Gets a value indicating whether the clock reads the system tick (on <see cref="TimeProvider.System"/>).</summary>
    public bool IsSystemTick => _systemClock;

    /// <summary>
    /// Gets how much earlier than it happened the clock may read an instant: <see cref="SystemTickResolution"/> on the
    /// system tick, zero for any other provider, which is read exactly. A bound that must never be overstayed (a lease's
    /// validity) subtracts it.
    /// </summary>
    public long ResolutionTicks => _systemClock ? SystemTickResolution.Ticks : 0;

    /// <summary>Gets the monotonic clock: <see cref="TimeSpan"/> ticks since the clock was created.</summary>
    /// <returns>The ticks; on the system clock, whole milliseconds.</returns>
    public long NowTicks() => _systemClock
        ? (Environment.TickCount64 - _origin) * TimeSpan.TicksPerMillisecond
        : _timeProvider.GetElapsedTime(_origin).Ticks;

    /// <summary>
    /// Gets a wait of <paramref name="ticks"/> for a timer: on the system tick rounded up to whole milliseconds, since the
    /// clock cannot tell a shorter wait from none and a loop that waits for less would spin until the tick moves. Any
    /// other provider gets it exactly.
    /// </summary>
    /// <param name="ticks">The wait, in <see cref="TimeSpan"/> ticks; not negative.</param>
    /// <returns>The wait.</returns>
    public TimeSpan Wait(long ticks) => _systemClock
        ? TimeSpan.FromTicks((ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond * TimeSpan.TicksPerMillisecond)
        : TimeSpan.FromTicks(ticks);

    /// <summary>Converts a monotonic instant taken just now to wall-clock time (UTC); outside the registry's lock.</summary>
    /// <param name="nowTicks">A recent <see cref="NowTicks"/> reading.</param>
    /// <returns>The wall-clock instant.</returns>
    public DateTimeOffset ToWallClock(long nowTicks)
    {
        WallAnchor anchor = Volatile.Read(ref _anchor);
        if (nowTicks >= anchor.RefreshAtTicks)
        {
            WallAnchor fresh = ReadAnchor();

            // A thread that read its anchor earlier but publishes later must not replace a newer one.
            WallAnchor current = Interlocked.CompareExchange(ref _anchor, fresh, anchor);
            anchor = ReferenceEquals(current, anchor) ? fresh : current;
        }

        return new DateTimeOffset(nowTicks + anchor.OffsetTicks, TimeSpan.Zero);
    }

    /// <summary>
    /// Converts a monotonic instant to wall-clock time with the offset last read, never calling the
    /// <see cref="TimeProvider"/>: safe under the registry's lock (for starts admitted there), at the cost of missing a
    /// wall-clock step of the last <see cref="WallClockRefresh"/>.
    /// </summary>
    public long ToWallClockUtcTicksCached(long nowTicks) => nowTicks + Volatile.Read(ref _anchor).OffsetTicks;

    /// <summary>Reads both clocks back to back, so that no pause between a caller's reading and this one skews the offset.</summary>
    private WallAnchor ReadAnchor()
    {
        long ticks = NowTicks();
        long offset = _timeProvider.GetUtcNow().UtcTicks - ticks;
        return new WallAnchor(offset, ticks + WallClockRefresh.Ticks);
    }

    /// <summary>Wall-clock UTC ticks minus monotonic ticks, and the monotonic instant at which to read it again.</summary>
    private sealed record WallAnchor(long OffsetTicks, long RefreshAtTicks);
}
