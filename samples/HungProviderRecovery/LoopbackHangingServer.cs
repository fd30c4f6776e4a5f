using System.Net;
using System.Net.Sockets;
using System.Text;

namespace HungProviderRecovery;

/// <summary>
/// A "model provider" on 127.0.0.1 that accepts each connection, reads the request, and then never answers
/// while keeping the connection open: the dead upstream that wedges an agent session in production. Nothing
/// here is simulated; the client really is blocked on a real socket.
/// </summary>
internal sealed class LoopbackHangingServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Action<string> _onRequest;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _connections = [];
    private readonly Task _acceptLoop;

    private LoopbackHangingServer(Action<string> onRequest)
    {
        _onRequest = onRequest;

        // Port 0: the OS picks a free port, so parallel runs (CI, a developer's second terminal) never clash.
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
        _acceptLoop = AcceptLoopAsync(_stop.Token);
    }

    /// <summary>Gets the address the server listens on.</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>Starts listening on an ephemeral loopback port.</summary>
    /// <param name="onRequest">Called with the request line of each request received (and never answered).</param>
    public static LoopbackHangingServer Start(Action<string> onRequest) => new(onRequest);

    /// <summary>Stops listening and closes every connection it was holding open.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();

        // The loop ends as soon as it sees the cancellation; the bound only guards the sample against a hang.
        await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        lock (_lock)
        {
            _connections.ForEach(static connection => connection.Dispose());
            _connections.Clear();
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                TcpClient connection = await _listener.AcceptTcpClientAsync(stopping);
                lock (_lock)
                {
                    _connections.Add(connection);
                }

                // Read the request (one connection at a time is plenty for this sample)...
                byte[] buffer = new byte[4096];
                int read = await connection.GetStream().ReadAsync(buffer, stopping);
                _onRequest(Encoding.ASCII.GetString(buffer, 0, read).Split("\r\n", 2)[0]);

                // ...and never answer. The connection stays open until the server is disposed.
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException)
            {
                // A client that went away mid-request: nothing to hold open, keep accepting.
            }
        }
    }
}
