namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>A Redis-compatible server a test fixture started on loopback and owns.</summary>
public interface IRedisTestServer
{
    /// <summary>Gets the server's port on 127.0.0.1.</summary>
    int Port { get; }

    /// <summary>Gets what the server is, for messages.</summary>
    string Name { get; }

    /// <summary>Stops the server abruptly: clients see their connections drop.</summary>
    Task StopAsync();

    /// <summary>Starts the server again on the same port, empty (no persistence).</summary>
    Task StartAsync();
}
