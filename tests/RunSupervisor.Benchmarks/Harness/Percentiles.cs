namespace RunSupervisor.Benchmarks.Harness;

/// <summary>Nearest-rank percentiles of a sample.</summary>
public static class Percentiles
{
    /// <summary>Sorts <paramref name="values"/> in place and returns the nearest-rank percentile <paramref name="p"/> (0–100).</summary>
    /// <param name="values">The sample; sorted by this call.</param>
    /// <param name="p">The percentile.</param>
    /// <returns>The value.</returns>
    public static double Of(double[] values, double p)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length == 0)
        {
            return double.NaN;
        }

        Array.Sort(values);
        int rank = (int)Math.Ceiling(p / 100 * values.Length);
        return values[Math.Clamp(rank - 1, 0, values.Length - 1)];
    }
}
