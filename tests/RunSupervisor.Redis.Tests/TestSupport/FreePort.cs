using System.Net;
using System.Net.Sockets;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Loopback ports for the servers the tests start; only 127.0.0.1 is ever used.</summary>
internal static class FreePort
{
    /// <summary>A port free on 127.0.0.1 a moment ago; the caller retries with another if its server cannot bind it.</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Waits until something accepts TCP connections on the port.</summary>
    public static async Task WaitUntilListeningAsync(int port, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }
}
