namespace RunSupervisor;

/// <summary>
/// The registry's admission lanes, fixed at construction: index 0 is the default lane (no cap of its own), the others
/// come from <see cref="RunSupervisorOptions.Lanes"/> in ordinal name order, so indexes are stable for a configuration.
/// </summary>
internal sealed class LaneSet
{
    private readonly Dictionary<string, int> _indexes;

    public LaneSet(IDictionary<string, int> lanes)
    {
        string[] names = [.. lanes.Keys.Order(StringComparer.Ordinal)];
        Names = new string?[names.Length + 1];
        Caps = new int[names.Length + 1];
        Caps[0] = int.MaxValue;
        _indexes = new Dictionary<string, int>(names.Length, StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
        {
            Names[i + 1] = names[i];
            Caps[i + 1] = lanes[names[i]];
            _indexes.Add(names[i], i + 1);
        }
    }

    /// <summary>Gets each lane's name; <see langword="null"/> for the default lane.</summary>
    public string?[] Names { get; }

    /// <summary>Gets each lane's cap on concurrent runs; <see cref="int.MaxValue"/> for the default lane.</summary>
    public int[] Caps { get; }

    public int Count => Caps.Length;

    /// <summary>Finds a lane by name; <see langword="null"/> is the default lane.</summary>
    /// <exception cref="ArgumentException">No lane has that name.</exception>
    public int IndexOf(string? name, string paramName)
    {
        if (name is null)
        {
            return 0;
        }

        return _indexes.TryGetValue(name, out int index)
            ? index
            : throw new ArgumentException($"RunStartOptions.Lane '{name}' is not one of RunSupervisorOptions.Lanes ({(_indexes.Count == 0 ? "none configured" : string.Join(", ", _indexes.Keys.Order(StringComparer.Ordinal)))}).", paramName);
    }
}
