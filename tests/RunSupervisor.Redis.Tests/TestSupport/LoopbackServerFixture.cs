using RunSupervisor.LoopbackServers;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// A server a test collection shares, started on a free loopback port and kept on that port across the stops and
/// restarts of the failure tests, since their clients hold its address.
/// </summary>
/// <typeparam name="TServer">The running server's handle; disposing it stops the server abruptly.</typeparam>
public abstract class LoopbackServerFixture<TServer> : IRedisTestServer, IAsyncLifetime
    where TServer : class, IDisposable
{
    private readonly Lock _lock = new();
    private TServer? _server;

    /// <inheritdoc/>
    public int Port { get; private set; }

    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <summary>Gets how long a start may take to listen, and a restart to find its port free again: 5 s.</summary>
    protected static TimeSpan Within { get; } = TimeSpan.FromSeconds(5);

    /// <summary>Starts the server on a free port, which every later <see cref="StartAsync"/> reuses.</summary>
    /// <returns>A task that completes once the server accepts connections.</returns>
    public virtual async Task InitializeAsync() => Keep(await LoopbackPort.StartOnFreePortAsync(port =>
    {
        Port = port;
        return StartOnAsync(port);
    }));

    /// <inheritdoc/>
    public async Task StartAsync() => Keep(await LoopbackPort.RestartAsync(() => StartOnAsync(Port), Within));

    /// <inheritdoc/>
    public Task StopAsync()
    {
        TServer? server;
        lock (_lock)
        {
            server = _server;
            _server = null;
        }

        server?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Stops the server.</summary>
    /// <returns>A completed task.</returns>
    public Task DisposeAsync() => StopAsync();

    /// <summary>Starts the server on <paramref name="port"/> and waits until it accepts connections.</summary>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <returns>The running server.</returns>
    protected abstract Task<TServer> StartOnAsync(int port);

    private void Keep(TServer server)
    {
        lock (_lock)
        {
            _server = server;
        }
    }
}
