using RunSupervisor.LoopbackServers;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>
/// <c>redis-server</c> started as a child process on a free loopback port without persistence and killed by its own
/// handle (<see cref="RedisServerChild"/>). When the binary is missing the tests that use it skip
/// (<see cref="RedisServerFactAttribute"/>), except in CI (<c>CI=true</c>), where they fail.
/// </summary>
public sealed class RedisServerFixture : LoopbackServerFixture<RedisServerChild>
{
    /// <summary>
    /// Gets the redis-server binary: <c>RUNSUPERVISOR_TEST_REDIS_SERVER</c> when set (a path, or <c>none</c> to act as
    /// if it were missing, which is how the skip and the CI failure are checked), else the first on PATH.
    /// </summary>
    public static string? ExecutablePath { get; } = Environment.GetEnvironmentVariable("RUNSUPERVISOR_TEST_REDIS_SERVER") switch
    {
        null or "" => RedisServerChild.FindOnPath(),
        "none" => null,
        string path => File.Exists(path) ? path : null,
    };

    /// <inheritdoc/>
    public override string Name => "redis-server";

    /// <summary>
    /// Starts the server on a free port; without the binary, does nothing (the tests skip) unless <c>CI=true</c>, where
    /// it fails.
    /// </summary>
    /// <returns>A task that completes once the server accepts connections.</returns>
    public override async Task InitializeAsync()
    {
        if (ExecutablePath is null)
        {
            if (!RedisServerFactAttribute.IsCi)
            {
                return;
            }

            throw new InvalidOperationException("redis-server is not on PATH and CI=true: install it (apt-get install -y redis-server); .ci/run does.");
        }

        await base.InitializeAsync();
    }

    /// <inheritdoc/>
    protected override Task<RedisServerChild> StartOnAsync(int port) =>
        RedisServerChild.StartAsync(ExecutablePath ?? throw new InvalidOperationException("redis-server is not on PATH."), port, Within);
}
