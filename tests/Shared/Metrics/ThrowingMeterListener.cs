using System.Diagnostics.Metrics;

namespace RunSupervisor.Metrics;

/// <summary>
/// A <see cref="MeterListener"/> listening to every instrument of one meter instance, whose callbacks throw: what a
/// buggy exporter does to the thread that records. Only that meter's instruments, so parallel tests never see it.
/// </summary>
internal static class ThrowingMeterListener
{
    /// <summary>Starts listening to <paramref name="meter"/>; dispose the result to stop.</summary>
    /// <param name="meter">The meter instance whose instruments throw when recorded.</param>
    /// <returns>The listener.</returns>
    public static MeterListener Start(Meter meter)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => throw new InvalidOperationException("listener bug"));
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => throw new InvalidOperationException("listener bug"));
        listener.Start();
        return listener;
    }
}
