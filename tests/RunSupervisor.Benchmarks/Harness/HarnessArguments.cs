using System.Globalization;

namespace RunSupervisor.Benchmarks.Harness;

/// <summary>The harness modes' options: <c>--name value</c> pairs and <c>--flag</c>s after the mode name.</summary>
public sealed class HarnessArguments
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    /// <summary>Initializes a new instance of the <see cref="HarnessArguments"/> class.</summary>
    /// <param name="args">The arguments after the mode name.</param>
    /// <exception cref="ArgumentException">An argument is not an option.</exception>
    public HarnessArguments(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{name}': options look like --name value.", nameof(args));
            }

            string? value = i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            _values[name[2..]] = value;
        }
    }

    /// <summary>Gets a string option.</summary>
    /// <param name="name">The name without dashes.</param>
    /// <param name="defaultValue">The value when absent.</param>
    /// <returns>The value.</returns>
    public string? GetString(string name, string? defaultValue = null)
    {
        _read.Add(name);
        return _values.TryGetValue(name, out string? value) ? value ?? throw new ArgumentException($"--{name} needs a value.") : defaultValue;
    }

    /// <summary>Gets an integer option (underscores allowed: 1_000_000).</summary>
    /// <param name="name">The name without dashes.</param>
    /// <param name="defaultValue">The value when absent.</param>
    /// <returns>The value.</returns>
    public int GetInt(string name, int defaultValue)
    {
        string? text = GetString(name);
        return text is null ? defaultValue : int.Parse(text.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.Integer, CultureInfo.InvariantCulture);
    }

    /// <summary>Gets a comma-separated list of integers.</summary>
    /// <param name="name">The name without dashes.</param>
    /// <param name="defaultValue">The value when absent.</param>
    /// <returns>The values.</returns>
    public int[] GetInts(string name, int[] defaultValue)
    {
        string? text = GetString(name);
        return text is null
            ? defaultValue
            : [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(static s => int.Parse(s.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.Integer, CultureInfo.InvariantCulture))];
    }

    /// <summary>Gets whether a flag is present.</summary>
    /// <param name="name">The name without dashes.</param>
    /// <returns><see langword="true"/> if present.</returns>
    public bool HasFlag(string name)
    {
        _read.Add(name);
        return _values.ContainsKey(name);
    }

    /// <summary>Throws if an option was given that the mode never asked for (a typo).</summary>
    /// <exception cref="ArgumentException">An option is unknown.</exception>
    public void ThrowIfUnknown()
    {
        string? unknown = _values.Keys.FirstOrDefault(k => !_read.Contains(k));
        if (unknown is not null)
        {
            throw new ArgumentException($"Unknown option --{unknown}.");
        }
    }
}
