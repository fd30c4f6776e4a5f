namespace RunSupervisor.Benchmarks.Harness;

/// <summary>How every harness mode ends: its CSV rows in the console (for the results' markdown) and, when asked, in a file.</summary>
public static class CsvOutput
{
    /// <summary>Prints the rows as a fenced CSV block and writes them to <paramref name="outPath"/> when it is set.</summary>
    /// <param name="header">The CSV header line.</param>
    /// <param name="rows">The CSV rows.</param>
    /// <param name="outPath">The file to write; <see langword="null"/> for none.</param>
    public static void Write(string header, IReadOnlyList<string> rows, string? outPath)
    {
        ArgumentNullException.ThrowIfNull(rows);
        Console.WriteLine("```csv");
        Console.WriteLine(header);
        foreach (string row in rows)
        {
            Console.WriteLine(row);
        }

        Console.WriteLine("```");
        if (outPath is not null)
        {
            File.WriteAllLines(outPath, [header, .. rows]);
            Console.WriteLine($"wrote {outPath}");
        }
    }
}
