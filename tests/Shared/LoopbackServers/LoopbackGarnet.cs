using System.Globalization;
using Garnet;

namespace RunSupervisor.LoopbackServers;

/// <summary>
/// Microsoft Garnet, a Redis-compatible server, hosted in this process on a 127.0.0.1 port, so nothing but the .NET SDK
/// is needed. Lua is on in transaction mode: without it Garnet runs scripts without isolation, and the lease store's
/// scripts rely on it.
/// </summary>
public sealed class LoopbackGarnet : IDisposable
{
    private readonly GarnetServer _server;

    private LoopbackGarnet(GarnetServer server, int port)
    {
        _server = server;
        Port = port;
    }

    /// <summary>Gets the server's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>Gets the command line the server is started with.</summary>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <param name="sizes">The memory it reserves.</param>
    /// <returns>The arguments.</returns>
    public static string[] Arguments(int port, GarnetSizes sizes) =>
    [
        // The command-line form: it fills in what the options object alone leaves unset. -q: no banner.
        "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
        "--lua", "true", "--lua-transaction-mode", "true",
        "-q", "--logger-level", "None", "--index", sizes.Index, "--memory", sizes.Memory, "--page", sizes.Page,
    ];

    /// <summary>Starts the server on <paramref name="port"/> and waits until it accepts connections.</summary>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <param name="sizes">The memory it reserves.</param>
    /// <param name="listenTimeout">How long it may take to accept a connection.</param>
    /// <returns>The running server; disposing it stops it.</returns>
    public static async Task<LoopbackGarnet> StartAsync(int port, GarnetSizes sizes, TimeSpan listenTimeout)
    {
        var server = new GarnetServer(Arguments(port, sizes));
        try
        {
            server.Start();
            await LoopbackPort.WaitUntilListeningAsync(port, listenTimeout);
            return new LoopbackGarnet(server, port);
        }
        catch
        {
            // A server that could not bind still holds its memory until disposed.
            server.Dispose();
            throw;
        }
    }

    /// <summary>Stops the server abruptly: clients see their connections drop.</summary>
    public void Dispose() => _server.Dispose();
}
