// GenericHostHeartbeat: RunSupervisor wired into a Generic Host the way a real agent daemon would do it. Options come
// from appsettings.json (validated at start-up), a hosted heartbeat wakes the agent once a second through the queue
// policy, every fifth agent turn hangs ignoring cancellation, the watchdog gives the session back, a health check is
// printed every 3 s, and on Ctrl+C (or --duration) RunSupervisor.Hosting drains the registry and logs a summary.
// Exit 0 when the session recovered from a hung run (CI relies on it).
using GenericHostHeartbeat;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// Past the host's own shutdown bound: if the host has not stopped by then, something hangs, and a smoke run must say so
// rather than wait for CI's timeout.
TimeSpan hardBoundSlack = TimeSpan.FromSeconds(5);

if (!CommandLine.TryParse(args, out CommandLine? commandLine, out string? error))
{
    Console.Error.WriteLine(error);
    CommandLine.PrintUsage(Console.Error);
    return 64;
}

if (commandLine.ShowHelp)
{
    CommandLine.PrintUsage(Console.Out);
    return 0;
}

HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = commandLine.HostArguments,

    // appsettings.json is copied next to the binary. The default content root is the working directory, which for
    // `dotnet run --project samples/GenericHostHeartbeat` from the repository root would miss it.
    ContentRootPath = AppContext.BaseDirectory,
});

// One line per event with a timestamp; the "Logging" section of appsettings.json still sets the levels.
builder.Logging.ClearProviders();
builder.Logging.AddSimpleConsole(console =>
{
    console.SingleLine = true;
    console.TimestampFormat = "HH:mm:ss.fff ";
});

// The shutdown drain waits up to GracePeriod + 1 s, cut to what is left of this bound - 1 s; see Scenario.ShutdownTimeout.
builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = Scenario.ShutdownTimeout);

// RunSupervisor.Hosting: binds the "RunSupervisor" section, validates it when the host starts, and registers the
// hosted service that drains the registry on shutdown. Called first, so that its hosted service is stopped last (the
// host stops services in reverse order): the heartbeat has stopped starting runs by the time the drain begins.
builder.Services.AddRunSupervisor(builder.Configuration);

// RunSupervisor.HealthChecks, evaluated through HealthCheckService like any other check.
builder.Services.AddHealthChecks()
    .AddRunSupervisorCheck(configure: check => check.MaxHeartbeatDropStreak = Scenario.MaxHeartbeatDropStreak);

builder.Services.AddSingleton<SimulatedAgent>();
builder.Services.AddSingleton<RecoveryMonitor>();
builder.Services.AddHostedService<HeartbeatService>();
builder.Services.AddHostedService<HealthReporter>();
if (commandLine.Duration is TimeSpan duration)
{
    builder.Services.AddHostedService(services => new SmokeRunDuration(
        duration,
        services.GetRequiredService<IHostApplicationLifetime>(),
        services.GetRequiredService<TimeProvider>(),
        services.GetRequiredService<ILogger<SmokeRunDuration>>()));
}

RecoveryMonitor monitor;
try
{
    IHost host = builder.Build();

    // Resolved before the start so that it sees every run end; it builds the registry, which validates the options.
    monitor = host.Services.GetRequiredService<RecoveryMonitor>();

    // RunAsync disposes the host when it returns, which flushes the console logger before the verdict is printed.
    Task running = host.RunAsync();
    if (commandLine.Duration is TimeSpan bounded)
    {
        TimeSpan hardBound = bounded + Scenario.ShutdownTimeout + hardBoundSlack;
        if (await Task.WhenAny(running, Task.Delay(hardBound)) != running)
        {
            Console.Error.WriteLine($"VERDICT: the host did not stop within {hardBound.TotalSeconds:0} s. Exit 2.");
            return 2;
        }
    }

    await running;
}
catch (OptionsValidationException ex)
{
    Console.Error.WriteLine($"Invalid configuration: {ex.Message}");
    return 78;
}

bool recovered = monitor.Recovered;
Console.WriteLine(recovered
    ? $"VERDICT: recovered: {monitor.Describe()}. Exit 0."
    : $"VERDICT: NOT recovered: {monitor.Describe()}. Exit 1.");
return recovered ? 0 : 1;
