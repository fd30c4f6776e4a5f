using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Garnet;

namespace MultiHostFailover;

/// <summary>
/// Microsoft Garnet, a Redis-compatible server, hosted in this process on a free 127.0.0.1 port, so the sample needs no
/// Redis installed. Lua runs in transaction mode: the lease store's scripts rely on running in isolation.
/// </summary>
internal sealed class EmbeddedGarnet : IDisposable
{
    private readonly GarnetServer _server;

    private EmbeddedGarnet(GarnetServer server, int port)
    {
        _server = server;
        Port = port;
    }

    public int Port { get; }

    public static EmbeddedGarnet Start()
    {
        for (int attempt = 1; ; attempt++)
        {
            int port = FreePort();
            try
            {
                var server = new GarnetServer(
                [
                    "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                    "--lua", "true", "--lua-transaction-mode", "true",
                    "-q", "--logger-level", "None", "--index", "16m", "--memory", "64m", "--page", "1m",
                ]);
                server.Start();
                return new EmbeddedGarnet(server, port);
            }
            catch (Exception) when (attempt < 5)
            {
                // Someone took the port between the probe and the bind: try another.
            }
        }
    }

    public void Dispose() => _server.Dispose();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
