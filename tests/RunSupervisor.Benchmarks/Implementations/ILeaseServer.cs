namespace RunSupervisor.Benchmarks.Implementations;

/// <summary>A Redis-compatible server on a free loopback port that a benchmark started and owns.</summary>
public interface ILeaseServer : IDisposable
{
    /// <summary>Gets the server's name: <see cref="LeaseServers.Garnet"/> or <see cref="LeaseServers.RedisServer"/>.</summary>
    string Name { get; }

    /// <summary>Gets the server's port on 127.0.0.1.</summary>
    int Port { get; }

    /// <summary>Gets the server's own process id, or <see langword="null"/> when it runs inside this process (Garnet).</summary>
    int? ProcessId { get; }
}
