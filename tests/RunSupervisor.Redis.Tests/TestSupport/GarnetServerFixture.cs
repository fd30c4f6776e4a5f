using System.Globalization;
using Garnet;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// Microsoft Garnet hosted in this process on a free loopback port, so the Redis suite needs nothing but the .NET SDK.
/// Lua is on in transaction mode: without it Garnet runs scripts without isolation.
/// </summary>
public sealed class GarnetServerFixture : IRedisTestServer, IAsyncLifetime
{
    private readonly Lock _lock = new();
    private GarnetServer? _server;

    public int Port { get; private set; }

    public string Name => "Garnet";

    public async Task InitializeAsync()
    {
        for (int attempt = 1; ; attempt++)
        {
            Port = FreePort.Next();
            try
            {
                await StartAsync();
                return;
            }
            catch (Exception) when (attempt < 5)
            {
                // Someone took the port between the probe and the bind: try another.
            }
        }
    }

    public async Task StartAsync()
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            try
            {
                // The command-line form: it fills in what the options object alone leaves unset. -q: no banner.
                var server = new GarnetServer(
                [
                    "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                    "--lua", "true", "--lua-transaction-mode", "true",
                    "-q", "--logger-level", "None", "--index", "16m", "--memory", "64m", "--page", "1m",
                ]);
                server.Start();
                lock (_lock)
                {
                    _server = server;
                }

                await FreePort.WaitUntilListeningAsync(Port, TimeSpan.FromSeconds(5));
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                // The port of the instance just stopped may take a moment to be free again.
                await Task.Delay(50);
            }
        }
    }

    public Task StopAsync()
    {
        GarnetServer? server;
        lock (_lock)
        {
            server = _server;
            _server = null;
        }

        server?.Dispose();
        return Task.CompletedTask;
    }

    public Task DisposeAsync() => StopAsync();
}
