namespace RunSupervisor.LoopbackServers;

/// <summary>
/// The memory an in-process Garnet reserves, in Garnet's size syntax (<c>16m</c>, <c>1g</c>): each user picks its own,
/// small for the test suites (many servers over a run), larger for the benchmarks (millions of keys written).
/// </summary>
/// <param name="Index">The hash index (<c>--index</c>).</param>
/// <param name="Memory">The log's memory (<c>--memory</c>).</param>
/// <param name="Page">The log's page (<c>--page</c>).</param>
public readonly record struct GarnetSizes(string Index, string Memory, string Page);
