using System.Net;
using System.Net.Sockets;
using System.Text;

namespace HungProviderRecovery;

/// <summary>
/// A model-provider client with the bug this sample is about. Like most SDKs it honours cancellation while it
/// connects and sends the request, but it then waits for the response with <see cref="CancellationToken.None"/>
/// (a slip easily made in a hand-rolled streaming reader). Once the request is out, cancelling does nothing:
/// if the server never answers, the call never ends, and neither does any <c>finally</c> waiting on it.
/// </summary>
internal sealed class BrokenProviderClient : IDisposable
{
    private static readonly byte[] RequestBody =
        Encoding.UTF8.GetBytes("""{"model":"demo-model","messages":[{"role":"user","content":"Summarise my inbox."}]}""");

    private readonly IPEndPoint _endpoint;
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _connections = [];

    public BrokenProviderClient(IPEndPoint endpoint) => _endpoint = endpoint;

    /// <summary>Sends a chat completion request and returns the response's status line.</summary>
    /// <param name="cancellationToken">Honoured until the request is sent; ignored afterwards (the bug).</param>
    public async Task<string> CompleteAsync(CancellationToken cancellationToken)
    {
        var connection = new TcpClient();
        lock (_lock)
        {
            _connections.Add(connection);
        }

        try
        {
            await connection.ConnectAsync(_endpoint, cancellationToken);
            NetworkStream stream = connection.GetStream();
            byte[] head = Encoding.ASCII.GetBytes(
                $"POST /v1/chat/completions HTTP/1.1\r\nHost: {_endpoint}\r\nContent-Type: application/json\r\nContent-Length: {RequestBody.Length}\r\n\r\n");
            byte[] request = [.. head, .. RequestBody];
            await stream.WriteAsync(request, cancellationToken);

            // THE BUG: the response is awaited without the caller's token, so the abort that the watchdog sends
            // at the deadline never reaches this read. Only an answer or a closed connection can end it.
            byte[] buffer = new byte[4096];
            int read = await stream.ReadAsync(buffer, CancellationToken.None);
            if (read == 0)
            {
                throw new IOException("The provider closed the connection without answering.");
            }

            return Encoding.ASCII.GetString(buffer, 0, read).Split("\r\n", 2)[0];
        }
        finally
        {
            // With a hung provider this is exactly the finally that never runs.
            lock (_lock)
            {
                _connections.Remove(connection);
            }

            connection.Dispose();
        }
    }

    /// <summary>Closes every open connection: the only thing that ends a call stuck in the read above.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _connections.ForEach(static connection => connection.Dispose());
            _connections.Clear();
        }
    }
}
