using System.Net;
using System.Net.Sockets;

namespace RunSupervisor.MultiProcess.Tests.TestSupport;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of a loopback server, for partitions. <see cref="BlackHole"/> stops forwarding in
/// both directions without closing a socket, as a cut cable or a frozen network would: the client sees no error, only
/// silence, so it must notice by itself. <see cref="Heal"/> lets the held bytes through again, in order.
/// </summary>
internal sealed class LoopbackProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Socket> _sockets = [];
    private readonly List<Task> _pumps = [];
    private readonly Lock _lock = new();
    private readonly Task _accepting;
    private TaskCompletionSource _flowing = Open();

    private LoopbackProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    /// <summary>Gets the proxy's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>Starts a proxy forwarding to <paramref name="targetPort"/> on 127.0.0.1.</summary>
    public static LoopbackProxy Start(int targetPort) => new(targetPort);

    /// <summary>Stops forwarding, both ways, on every connection, present and future; nothing is closed.</summary>
    public void BlackHole()
    {
        lock (_lock)
        {
            if (_flowing.Task.IsCompleted)
            {
                _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Forwards again: the bytes held during the black hole go through first.</summary>
    public void Heal()
    {
        lock (_lock)
        {
            _flowing.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        Heal();
        Task[] pumps;
        lock (_lock)
        {
            foreach (Socket socket in _sockets)
            {
                socket.Dispose();
            }

            pumps = [.. _pumps, _accepting];
        }

        await Task.WhenAll(pumps).WaitAsync(TimeSpan.FromSeconds(5));
        _stopping.Dispose();
    }

    private static TaskCompletionSource Open()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                Socket client = await _listener.AcceptSocketAsync(_stopping.Token);
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                client.NoDelay = true;
                lock (_lock)
                {
                    _sockets.Add(client);
                    _sockets.Add(server);
                }

                try
                {
                    await server.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _targetPort), _stopping.Token);
                }
                catch (SocketException)
                {
                    // The server is down: the client sees its connection close, as it would without the proxy.
                    client.Dispose();
                    server.Dispose();
                    continue;
                }

                lock (_lock)
                {
                    _pumps.Add(PumpAsync(client, server));
                    _pumps.Add(PumpAsync(server, client));
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Stopped.
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        byte[] buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, _stopping.Token);
                if (read == 0)
                {
                    break;
                }

                // Held here while black-holed: read, but not passed on, so neither side learns anything.
                Task flowing;
                lock (_lock)
                {
                    flowing = _flowing.Task;
                }

                await flowing.WaitAsync(_stopping.Token);
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stopping.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Stopped, or one side went away.
        }

        // One side closed: close the other, as a transparent proxy would.
        from.Dispose();
        to.Dispose();
    }
}
