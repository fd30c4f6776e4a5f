using System.Diagnostics;
using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.MultiProcess.Tests.MultiProcess;

/// <summary>
/// Two gateway processes sharing sessions through one server, in real time: one killed mid-run, and the server
/// restarted mid-run. The same scenarios run on every server kind; the bounds are the lease arithmetic plus generous slack.
/// </summary>
internal static class MultiProcessScenarios
{
    private const string HeldElsewhere = "DROPPED s heartbeat while a run is active on another host";

    /// <summary>
    /// A holds s with a hanging provider; B is refused (busy, naming A) and its heartbeat dropped; A is killed; B takes
    /// over once the lease expires, with a larger token, and is owed its heartbeat.
    /// </summary>
    public static async Task OwnerKilledAsync(IRedisTestServer server, ITestOutputHelper output)
    {
        string prefix = LeaseSettings.NewPrefix();
        await using ConnectionMultiplexer admin = await ConnectionMultiplexer.ConnectAsync(LeaseSettings.Connection(server.Port));
        await using HostProcess a = await HostProcess.StartAsync("A", server.Port, prefix, output);
        await using HostProcess b = await HostProcess.StartAsync("B", server.Port, prefix, output);

        long first = (await a.RequestAsync("start s hang", "STARTED s")).Number(2);

        HostLine busy = await b.RequestAsync("start s hang", "STARTED s", "BUSY s", "UNAVAILABLE s");
        busy.Text.Should().Be($"BUSY s A {first}", "A holds the session's lease");
        (await b.RequestAsync("heartbeat s", "DROPPED s", "RUNNOW s")).Text.Should().Be(HeldElsewhere);

        await a.KillAsync();
        long killedAt = Stopwatch.GetTimestamp();

        // A is dead, so nothing renews from here on: what is left of the key's time to live is when it expires.
        TimeSpan? left = await admin.GetDatabase().KeyTimeToLiveAsync(LeaseSettings.LeaseKey(prefix, "s"));
        long expiresAt = Stopwatch.GetTimestamp() + (long)(left.GetValueOrDefault().TotalSeconds * Stopwatch.Frequency);
        left.Should().NotBeNull("the killed owner's lease outlives it until its time to live runs out");
        left!.Value.Should().BeGreaterThan(TimeSpan.Zero).And.BeLessThanOrEqualTo(LeaseSettings.Ttl);

        // Heartbeats are still dropped while the dead owner's lease lives on.
        (await b.RequestAsync("heartbeat s", "DROPPED s", "RUNNOW s")).Text.Should().Be(HeldElsewhere);

        // B learns that the session is idle cluster-wide from its poll (a killed owner sends no release), and is owed
        // both heartbeats; B delivers the owed heartbeat as a run of its own, which takes the session over. B does not
        // ask for the session before that: a refused start would announce the heartbeat early (see
        // HeartbeatOwedAcrossHostsTests).
        HostLine owed = await b.WaitForAsync(l => l.Text.StartsWith("OWED s", StringComparison.Ordinal), LeaseSettings.Ttl + LeaseSettings.Slack);
        HostLine started = await StartUntilAcquiredAsync(b, "s", LeaseSettings.Slack);
        TimeSpan killToOwed = Stopwatch.GetElapsedTime(killedAt, owed.ArrivedAt);
        TimeSpan expiryToOwed = Stopwatch.GetElapsedTime(expiresAt, owed.ArrivedAt);
        TimeSpan killToTakeover = Stopwatch.GetElapsedTime(killedAt, started.ArrivedAt);
        TimeSpan expiryToTakeover = Stopwatch.GetElapsedTime(expiresAt, started.ArrivedAt);
        output.WriteLine($"{server.Name}: kill → owed {killToOwed.TotalMilliseconds:0} ms, → takeover {killToTakeover.TotalMilliseconds:0} ms; lease expiry → owed {expiryToOwed.TotalMilliseconds:0} ms, → takeover {expiryToTakeover.TotalMilliseconds:0} ms (TTL {LeaseSettings.Ttl.TotalMilliseconds:0} ms, poll {LeaseSettings.RemoteIdlePollInterval.TotalMilliseconds:0} ms, TTL left at kill {left.Value.TotalMilliseconds:0} ms)");

        owed.Text.Should().Be("OWED s 2");
        expiryToOwed.Should().BeGreaterThan(TimeSpan.FromMilliseconds(-100), "the session is not idle before the dead owner's lease expires");
        expiryToOwed.Should().BeLessThanOrEqualTo(LeaseSettings.RemoteIdlePollInterval + LeaseSettings.Slack, "one poll finds the expired lease");
        started.Number(2).Should().BeGreaterThan(first, "every lease of a session gets a larger fencing token than the one before");
        killToTakeover.Should().BeLessThanOrEqualTo(LeaseSettings.Ttl + LeaseSettings.Slack);
    }

    /// <summary>
    /// The server dies under a running leased run: the run ends LeaseLost (failing closed) within its local validity,
    /// starts fail fast meanwhile, and once the server is back (empty) the next start works with a larger token.
    /// </summary>
    public static async Task ServerRestartedAsync(IRedisTestServer server, ITestOutputHelper output)
    {
        string prefix = LeaseSettings.NewPrefix();
        bool stopped = false;
        try
        {
            await using HostProcess a = await HostProcess.StartAsync("A", server.Port, prefix, output);
            long first = (await a.RequestAsync("start s hang", "STARTED s")).Number(2);

            // Past the first renew, so the validity being measured is a renewed one.
            await Task.Delay(LeaseSettings.RenewInterval + TimeSpan.FromMilliseconds(100));
            await server.StopAsync();
            stopped = true;
            long stoppedAt = Stopwatch.GetTimestamp();

            HostLine ended = await a.WaitForAsync(l => l.Text.StartsWith("ENDED s", StringComparison.Ordinal), LeaseSettings.Ttl + LeaseSettings.Slack);
            TimeSpan lost = Stopwatch.GetElapsedTime(stoppedAt, ended.ArrivedAt);
            output.WriteLine($"{server.Name}: server stopped → LeaseLost {lost.TotalMilliseconds:0} ms (validity TTL − margin = {LeaseSettings.Validity.TotalMilliseconds:0} ms after the last confirmed renew)");
            ended.Word(2).Should().Be(nameof(RunEndReason.LeaseLost));
            ended.Number(3).Should().Be(first);
            lost.Should().BeLessThanOrEqualTo(LeaseSettings.Validity + TimeSpan.FromSeconds(1), "a run stops trusting its lease TTL − margin after its last confirmed renew");

            // Failing closed: a start while the server is down fails within the acquire timeout instead of hanging.
            long asked = Stopwatch.GetTimestamp();
            (await a.RequestAsync("start t hang", "STARTED t", "BUSY t", "UNAVAILABLE t")).Text.Should().Be("UNAVAILABLE t");
            Stopwatch.GetElapsedTime(asked).Should().BeLessThanOrEqualTo(LeaseSettings.AcquireTimeout + TimeSpan.FromSeconds(1));

            await server.StartAsync();
            stopped = false;
            long restartedAt = Stopwatch.GetTimestamp();
            HostLine again = await StartUntilAcquiredAsync(a, "s", LeaseSettings.Slack + LeaseSettings.Ttl);
            output.WriteLine($"{server.Name}: server restarted → next start acquired {Stopwatch.GetElapsedTime(restartedAt, again.ArrivedAt).TotalMilliseconds:0} ms later");
            again.Number(2).Should().BeGreaterThan(first, "the restarted server forgot the counter, and the token is minted from its clock");
        }
        finally
        {
            if (stopped)
            {
                // Whatever failed, the next test gets its server back.
                await server.StartAsync();
            }
        }
    }

    /// <summary>Asks for the session until the host gets it; a refusal is busy (or unavailable while reconnecting), never an error.</summary>
    private static async Task<HostLine> StartUntilAcquiredAsync(HostProcess host, string session, TimeSpan within)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(within.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            HostLine answer = await host.RequestAsync($"start {session} hang", $"STARTED {session}", $"BUSY {session}", $"UNAVAILABLE {session}", "ERROR start");
            if (answer.Text.StartsWith("STARTED", StringComparison.Ordinal))
            {
                return answer;
            }

            (answer.Text.StartsWith("BUSY", StringComparison.Ordinal) || answer.Text.StartsWith("UNAVAILABLE", StringComparison.Ordinal))
                .Should().BeTrue($"a refused start is busy, or unavailable while the connection comes back, never an error ({answer.Text})");
            if (Stopwatch.GetTimestamp() >= deadline)
            {
                throw new TimeoutException($"Host {host.HostId} did not get {session} within {within.TotalSeconds:0.0} s; last answer: {answer.Text}");
            }

            await Task.Delay(100);
        }
    }
}
