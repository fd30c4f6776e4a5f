using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ChatClientRecovery;

/// <summary>
/// A minimal OpenAI-compatible chat completions endpoint (<c>POST /v1/chat/completions</c>) on 127.0.0.1, an
/// ephemeral port, speaking real HTTP/1.1 over a real socket, so the real OpenAI .NET SDK can be pointed at it. What
/// it answers depends on the request's <c>model</c>:
/// <list type="bullet">
/// <item><see cref="StallModel"/>: the dead upstream. Streaming: the SSE headers and one chunk, then nothing, the
/// connection held open. Not streaming: the headers and the start of the body, then nothing.</item>
/// <item><see cref="ToolCallModel"/>: a model that asks for the request's first tool; once the request carries a
/// tool result, a short final answer.</item>
/// </list>
/// Used by the ChatClientRecovery sample and, linked, by the RunSupervisor.Extensions.AI integration tests.
/// </summary>
internal sealed class LoopbackOpenAIServer : IAsyncDisposable
{
    /// <summary>The model name that makes the server stall after the first chunk.</summary>
    public const string StallModel = "stall-after-first-chunk";

    /// <summary>The model name that makes the server call the request's first tool.</summary>
    public const string ToolCallModel = "call-the-tool";

    /// <summary>The content of the one chunk a stalling stream sends.</summary>
    public const string FirstChunkText = "Let me check";

    private static readonly TimeSpan ShutdownBound = TimeSpan.FromSeconds(2);

    private readonly TcpListener _listener;
    private readonly Action<string> _onRequest;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _connections = [];
    private readonly List<Task> _handlers = [];
    private readonly Task _acceptLoop;
    private int _requests;

    private LoopbackOpenAIServer(Action<string> onRequest)
    {
        _onRequest = onRequest;

        // Port 0: the OS picks a free port, so parallel runs (CI, a second terminal, parallel tests) never clash.
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
        BaseAddress = new Uri($"http://{Endpoint}/v1");
        _acceptLoop = AcceptLoopAsync(_stop.Token);
    }

    /// <summary>Gets the address the server listens on.</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>Gets the base address to give the OpenAI client (<c>OpenAIClientOptions.Endpoint</c>).</summary>
    public Uri BaseAddress { get; }

    /// <summary>Gets the number of requests received so far.</summary>
    public int RequestCount => Volatile.Read(ref _requests);

    /// <summary>Starts listening on an ephemeral loopback port.</summary>
    /// <param name="onRequest">Called with a one-line description of each request, and of each stall.</param>
    public static LoopbackOpenAIServer Start(Action<string>? onRequest = null) => new(onRequest ?? (_ => { }));

    /// <summary>Stops listening and closes every connection it was holding open.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Task[] handlers;
        lock (_lock)
        {
            _connections.ForEach(static connection => connection.Dispose());
            _connections.Clear();
            handlers = [.. _handlers];
        }

        // Closing the sockets ends every handler at once; the bound only guards against a hang.
        await Task.WhenAll([_acceptLoop, .. handlers]).WaitAsync(ShutdownBound).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient connection;
            try
            {
                connection = await _listener.AcceptTcpClientAsync(stopping);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_lock)
            {
                if (stopping.IsCancellationRequested)
                {
                    connection.Dispose();
                    return;
                }

                _connections.Add(connection);
                _handlers.Add(ServeAsync(connection, stopping));
            }
        }
    }

    /// <summary>Serves one connection: requests one after another (HTTP keep-alive), until a stall or a close.</summary>
    private async Task ServeAsync(TcpClient connection, CancellationToken stopping)
    {
        try
        {
            NetworkStream stream = connection.GetStream();
            var reader = new HttpRequestReader(stream);
            while (await reader.ReadBodyAsync(stopping) is { } body)
            {
                Interlocked.Increment(ref _requests);
                if (!await RespondAsync(stream, body, stopping))
                {
                    // Stalled: hold the connection open, write nothing more, until the server is disposed.
                    await Task.Delay(Timeout.Infinite, stopping);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // The client went away, or the server is shutting down.
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(connection);
            }

            connection.Dispose();
        }
    }

    /// <returns><see langword="false"/> if the response was left hanging on purpose.</returns>
    private async Task<bool> RespondAsync(NetworkStream stream, JsonNode? request, CancellationToken stopping)
    {
        string model = request?["model"]?.GetValue<string>() ?? "";
        bool streaming = request?["stream"]?.GetValue<bool>() ?? false;
        bool hasToolResult = request?["messages"]?.AsArray().Any(static m => m?["role"]?.GetValue<string>() == "tool") ?? false;
        string? toolName = request?["tools"]?.AsArray().FirstOrDefault()?["function"]?["name"]?.GetValue<string>();
        _onRequest($"received POST /v1/chat/completions (model \"{model}\", {(streaming ? "streaming" : "not streaming")}{(hasToolResult ? ", with a tool result" : "")})");

        if (model == StallModel)
        {
            if (streaming)
            {
                await WriteAsync(stream, SseHead + Chunk(Sse(TextChunk(model, FirstChunkText))), stopping);
                _onRequest($"sent the SSE headers and one chunk (\"{FirstChunkText}\"); stalling, connection held open");
            }
            else
            {
                await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"id\":\"chatcmpl-1\",", stopping);
                _onRequest("sent the headers and the start of the body; stalling, connection held open");
            }

            return false;
        }

        if (model == ToolCallModel && !hasToolResult && toolName is not null)
        {
            if (streaming)
            {
                await WriteAsync(stream, SseHead + Chunk(Sse(ToolCallChunk(model, toolName)) + Sse(FinishChunk(model, "tool_calls")) + "data: [DONE]\n\n") + "0\r\n\r\n", stopping);
            }
            else
            {
                await WriteJsonAsync(stream, ToolCallCompletion(model, toolName), stopping);
            }

            _onRequest($"answered: call the tool \"{toolName}\"");
            return true;
        }

        const string Answer = "All done.";
        if (streaming)
        {
            await WriteAsync(stream, SseHead + Chunk(Sse(TextChunk(model, Answer)) + Sse(FinishChunk(model, "stop")) + "data: [DONE]\n\n") + "0\r\n\r\n", stopping);
        }
        else
        {
            await WriteJsonAsync(stream, TextCompletion(model, Answer), stopping);
        }

        _onRequest($"answered: \"{Answer}\"");
        return true;
    }

    private const string SseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

    private static string Sse(string json) => $"data: {json}\n\n";

    private static string Chunk(string data) =>
        string.Create(CultureInfo.InvariantCulture, $"{Encoding.UTF8.GetByteCount(data):x}\r\n{data}\r\n");

    private static string TextChunk(string model, string text) => new JsonObject
    {
        ["id"] = "chatcmpl-1", ["object"] = "chat.completion.chunk", ["created"] = 1764000000, ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0, ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = text }, ["finish_reason"] = null,
        }),
    }.ToJsonString();

    private static string ToolCallChunk(string model, string toolName) => new JsonObject
    {
        ["id"] = "chatcmpl-1", ["object"] = "chat.completion.chunk", ["created"] = 1764000000, ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["delta"] = new JsonObject { ["role"] = "assistant", ["tool_calls"] = new JsonArray(ToolCall(toolName, index: 0)) },
            ["finish_reason"] = null,
        }),
    }.ToJsonString();

    private static string FinishChunk(string model, string reason) => new JsonObject
    {
        ["id"] = "chatcmpl-1", ["object"] = "chat.completion.chunk", ["created"] = 1764000000, ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject(), ["finish_reason"] = reason }),
    }.ToJsonString();

    private static string ToolCallCompletion(string model, string toolName) => Completion(
        model,
        new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(ToolCall(toolName, index: null)) },
        "tool_calls");

    private static string TextCompletion(string model, string text) =>
        Completion(model, new JsonObject { ["role"] = "assistant", ["content"] = text }, "stop");

    private static string Completion(string model, JsonObject message, string finishReason) => new JsonObject
    {
        ["id"] = "chatcmpl-1", ["object"] = "chat.completion", ["created"] = 1764000000, ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = message, ["finish_reason"] = finishReason }),
        ["usage"] = new JsonObject { ["prompt_tokens"] = 5, ["completion_tokens"] = 5, ["total_tokens"] = 10 },
    }.ToJsonString();

    private static JsonObject ToolCall(string toolName, int? index)
    {
        var call = new JsonObject
        {
            ["id"] = "call_1", ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = "{}" },
        };
        if (index is int i)
        {
            call["index"] = i;
        }

        return call;
    }

    private static Task WriteJsonAsync(NetworkStream stream, string json, CancellationToken stopping) => WriteAsync(
        stream,
        string.Create(CultureInfo.InvariantCulture, $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(json)}\r\n\r\n{json}"),
        stopping);

    private static async Task WriteAsync(NetworkStream stream, string text, CancellationToken stopping)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes(text), stopping);
        await stream.FlushAsync(stopping);
    }

    /// <summary>Reads HTTP/1.1 requests from a connection: the head, then a Content-Length or chunked body.</summary>
    private sealed class HttpRequestReader
    {
        private readonly NetworkStream _stream;
        private readonly byte[] _buffer = new byte[16 * 1024];
        private readonly List<byte> _pending = [];

        public HttpRequestReader(NetworkStream stream) => _stream = stream;

        /// <returns>The request's JSON body (an empty object if it has none or is not JSON); <see langword="null"/> when the client closed the connection.</returns>
        public async Task<JsonNode?> ReadBodyAsync(CancellationToken stopping)
        {
            string? head = await ReadHeadAsync(stopping);
            if (head is null)
            {
                return null;
            }

            string[] lines = head.Split("\r\n");
            string? Header(string name) => lines
                .Select(static line => line.Split(':', 2))
                .Where(parts => parts.Length == 2 && parts[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
                .Select(static parts => parts[1].Trim())
                .FirstOrDefault();

            byte[] body;
            if (Header("Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)
            {
                var chunks = new List<byte>();
                while (true)
                {
                    string sizeLine = await ReadLineAsync(stopping) ?? throw new IOException("Connection closed in a chunked body.");
                    int size = int.Parse(sizeLine.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    chunks.AddRange(await ReadExactlyAsync(size + 2, stopping));
                    chunks.RemoveRange(chunks.Count - 2, 2);
                    if (size == 0)
                    {
                        break;
                    }
                }

                body = [.. chunks];
            }
            else
            {
                body = await ReadExactlyAsync(int.Parse(Header("Content-Length") ?? "0", CultureInfo.InvariantCulture), stopping);
            }

            try
            {
                return (body.Length == 0 ? null : JsonNode.Parse(body) as JsonObject) ?? new JsonObject();
            }
            catch (JsonException)
            {
                return new JsonObject();
            }
        }

        private async Task<string?> ReadHeadAsync(CancellationToken stopping)
        {
            var head = new StringBuilder();
            while (await ReadLineAsync(stopping) is { } line)
            {
                if (line.Length == 0)
                {
                    return head.ToString();
                }

                head.Append(line).Append("\r\n");
            }

            return null;
        }

        private async Task<string?> ReadLineAsync(CancellationToken stopping)
        {
            while (true)
            {
                for (int i = 1; i < _pending.Count; i++)
                {
                    if (_pending[i - 1] == '\r' && _pending[i] == '\n')
                    {
                        string line = Encoding.ASCII.GetString([.. _pending.GetRange(0, i - 1)]);
                        _pending.RemoveRange(0, i + 1);
                        return line;
                    }
                }

                if (!await FillAsync(stopping))
                {
                    return null;
                }
            }
        }

        private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken stopping)
        {
            while (_pending.Count < count)
            {
                if (!await FillAsync(stopping))
                {
                    throw new IOException("Connection closed in a request body.");
                }
            }

            byte[] bytes = [.. _pending.GetRange(0, count)];
            _pending.RemoveRange(0, count);
            return bytes;
        }

        private async Task<bool> FillAsync(CancellationToken stopping)
        {
            int read = await _stream.ReadAsync(_buffer, stopping);
            _pending.AddRange(_buffer.AsSpan(0, read));
            return read > 0;
        }
    }
}
