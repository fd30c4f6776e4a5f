using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RunSupervisor.LoopbackServers;

/// <summary>
/// Loopback ports for the Redis-compatible servers the tests and benchmarks start (<see cref="LoopbackGarnet"/>,
/// <see cref="RedisServerChild"/>); only 127.0.0.1 is ever used.
/// </summary>
public static class LoopbackPort
{
    /// <summary>How many free ports <see cref="StartOnFreePortAsync{T}"/> tries before it lets the failure through.</summary>
    public const int Attempts = 5;

    /// <summary>Gets a port free on 127.0.0.1 a moment ago; the caller retries with another if its server cannot bind it.</summary>
    /// <returns>The port.</returns>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Starts a server on a free port, on another one when the start fails, up to <see cref="Attempts"/> ports.</summary>
    /// <typeparam name="T">The started server.</typeparam>
    /// <param name="start">Starts the server on the port it is given; on failure it throws, having cleaned up after itself.</param>
    /// <returns>The server <paramref name="start"/> returned.</returns>
    public static async Task<T> StartOnFreePortAsync<T>(Func<int, Task<T>> start)
    {
        ArgumentNullException.ThrowIfNull(start);
        for (int attempt = 1; ; attempt++)
        {
            int port = Next();
            try
            {
                return await start(port);
            }
            catch (Exception) when (attempt < Attempts)
            {
                // Someone took the port between the probe and the bind: try another.
            }
        }
    }

    /// <summary>
    /// Starts a server again on the port its clients already know, trying again every 50 ms until
    /// <paramref name="within"/> has passed: the port of the instance just stopped may take a moment to be free again.
    /// </summary>
    /// <typeparam name="T">The started server.</typeparam>
    /// <param name="start">Starts the server; on failure it throws, having cleaned up after itself.</param>
    /// <param name="within">How long to keep trying; the failure after it is let through.</param>
    /// <returns>The server <paramref name="start"/> returned.</returns>
    public static async Task<T> RestartAsync<T>(Func<Task<T>> start, TimeSpan within)
    {
        ArgumentNullException.ThrowIfNull(start);
        long deadline = Stopwatch.GetTimestamp() + (long)(within.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return await start();
            }
            catch (Exception) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Waits until something accepts TCP connections on the port.</summary>
    /// <param name="port">The port on 127.0.0.1.</param>
    /// <param name="timeout">How long to wait; then the last connection failure (or the cancellation) is let through.</param>
    /// <param name="gaveUp">Says when waiting longer is pointless (a child server that exited); its connection failure is let through.</param>
    /// <returns>A task that completes once a connection succeeded.</returns>
    public static async Task WaitUntilListeningAsync(int port, TimeSpan timeout, Func<bool>? gaveUp = null)
    {
        // The token bounds each connect too, so a connect that neither succeeds nor fails cannot outlast the timeout.
        using var timeoutSource = new CancellationTokenSource(timeout);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port, timeoutSource.Token);
                return;
            }
            catch (SocketException) when (!timeoutSource.IsCancellationRequested && gaveUp?.Invoke() != true)
            {
                await Task.Delay(20, CancellationToken.None);
            }
        }
    }
}
