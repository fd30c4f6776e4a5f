using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace RunSupervisor.Hosting.Tests.TestSupport;

/// <summary>
/// A real Generic Host (Host.CreateEmptyApplicationBuilder) on a <see cref="FakeTimeProvider"/>, configured from an
/// in-memory "RunSupervisor" section, with every log record collected by a <see cref="FakeLogCollector"/>.
/// </summary>
internal sealed class TestHost : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The host's shutdown timeout in <see cref="DefaultSettings"/>: long enough for the drain's full wait (grace + 1 s).
    /// The host measures it on the real clock, so it also bounds a test that hangs in StopAsync.
    /// </summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromMinutes(2);

    /// <summary>A real-time bound that only turns a hang into a failure; never the behaviour under test.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    private TestHost(IHost host, FakeTimeProvider time)
    {
        Host = host;
        Time = time;
    }

    public IHost Host { get; }

    public FakeTimeProvider Time { get; }

    public ActiveRunRegistry Registry => Host.Services.GetRequiredService<ActiveRunRegistry>();

    public FakeLogCollector Logs => Host.Services.GetFakeLogCollector();

    public static Dictionary<string, string?> DefaultSettings() => new()
    {
        ["RunSupervisor:RunTimeout"] = Timeout.ToString(),
        ["RunSupervisor:GracePeriod"] = Grace.ToString(),
        [ShutdownTimeoutKey] = ((int)ShutdownTimeout.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The configuration key the host reads <c>HostOptions.ShutdownTimeout</c> from, in whole seconds.</summary>
    public const string ShutdownTimeoutKey = "shutdownTimeoutSeconds";

    /// <summary>Builds (does not start) a host; <paramref name="configure"/> may add services after RunSupervisor.</summary>
    public static TestHost Build(IDictionary<string, string?>? settings = null, Action<IServiceCollection, IConfiguration>? register = null)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings ?? DefaultSettings());
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Services.AddFakeLogging();
        if (register is null)
        {
            builder.Services.AddRunSupervisor(builder.Configuration);
        }
        else
        {
            register(builder.Services, builder.Configuration);
        }

        return new TestHost(builder.Build(), time);
    }

    public static async Task<TestHost> StartAsync(IDictionary<string, string?>? settings = null)
    {
        TestHost host = Build(settings);
        await host.Host.StartAsync();
        return host;
    }

    public IReadOnlyList<FakeLogRecord> LogsWithEvent(string eventName)
        => Logs.GetSnapshot().Where(r => r.Id.Name == eventName).ToList();

    public async ValueTask DisposeAsync()
    {
        if (Host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            Host.Dispose();
        }
    }
}
