using System.Globalization;

namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>Session ids shaped like a host's (a prefix and a zero-padded number, 14 to 20 characters), made once up front.</summary>
public static class BenchSessionIds
{
    /// <summary>Makes <paramref name="count"/> distinct session ids with <paramref name="prefix"/>.</summary>
    /// <param name="prefix">The prefix, e.g. "warm".</param>
    /// <param name="count">How many.</param>
    /// <returns>The ids.</returns>
    public static string[] Create(string prefix, int count)
    {
        var ids = new string[count];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i:D8}");
        }

        return ids;
    }
}
