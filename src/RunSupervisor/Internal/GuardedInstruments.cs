using System.Diagnostics.Metrics;

namespace RunSupervisor;

/// <summary>
/// Recording on an instrument without letting a <see cref="MeterListener"/> break the caller: a listener's callback runs
/// on the recording thread, and .NET lets its exception escape from <c>Add</c> or <c>Record</c>, in the middle of
/// whatever the library was doing. Shared by the core's instruments and the adapter packages'.
/// </summary>
internal static class GuardedInstruments
{
    /// <summary>Records on <paramref name="instrument"/> if anyone listens; a listener's exception goes to <paramref name="failed"/>, never to the caller.</summary>
    /// <param name="instrument">The instrument, skipped (tags unbuilt) when nobody listens.</param>
    /// <param name="state">What <paramref name="record"/> records.</param>
    /// <param name="record">The recording; a static lambda, so nothing is allocated.</param>
    /// <param name="failed">Told the instrument's name and the listener's exception.</param>
    public static void Measure<TInstrument, TState>(TInstrument instrument, TState state, Action<TInstrument, TState> record, Action<string, Exception> failed)
        where TInstrument : Instrument
    {
        if (!instrument.Enabled)
        {
            return;
        }

        try
        {
            record(instrument, state);
        }
#pragma warning disable CA1031 // A meter listener is foreign code: its failure must not break what is being recorded.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failed(instrument.Name, ex);
        }
    }
}
