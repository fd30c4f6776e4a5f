using System.Diagnostics;
using RunSupervisor.Leasing;
using RunSupervisor.MultiProcess.Tests.TestSupport;
using RunSupervisor.Redis;
using RunSupervisor.Redis.Tests.TestSupport;
using StackExchange.Redis;

namespace RunSupervisor.MultiProcess.Tests.Partition;

/// <summary>
/// Two hosts in this process, each with its own connection and store, host A's through a proxy that can cut it off from
/// the server without closing anything. Real time; the bounds are the lease arithmetic plus slack.
/// </summary>
internal static class PartitionScenarios
{
    /// <summary>
    /// A is cut off while it runs s: its run ends LeaseLost at its local validity end, while the server still holds the
    /// lease (B is refused, the key has time left), and B gets s only after the TTL, with a larger token.
    /// </summary>
    public static async Task CutOffOwnerAsync(IRedisTestServer server, ITestOutputHelper output)
    {
        await using var hosts = await Hosts.StartAsync(server);
        var lost = new TaskCompletionSource<(RunEndedEventArgs Args, long At)>(TaskCreationOptions.RunContinuationsAsynchronously);
        hosts.A.RunEnded += (_, e) => lost.TrySetResult((e, Stopwatch.GetTimestamp()));
        RunHandle run = await hosts.A.StartAsync("s");

        // Past a renew or two, so the validity measured is a renewed one, then cut A off.
        await Task.Delay(LeaseSettings.RenewInterval * 1.5);
        hosts.Proxy.BlackHole();
        long cutAt = Stopwatch.GetTimestamp();

        (RunEndedEventArgs ended, long lostAt) = await lost.Task.WaitAsync(LeaseSettings.Ttl + LeaseSettings.Slack);

        // Looked at through B the moment A gave up: the server still says A.
        TimeSpan? left = await hosts.DatabaseB.KeyTimeToLiveAsync(LeaseSettings.LeaseKey(hosts.Prefix, "s"));
        long checkedAt = Stopwatch.GetTimestamp();
        RunLeaseInfo? owner = await hosts.B.GetSessionOwnerAsync("s");
        Func<Task> startOnB = async () => await hosts.B.StartAsync("s");
        SessionBusyException refused = (await startOnB.Should().ThrowAsync<SessionBusyException>("the server still holds A's lease")).Which;

        TimeSpan cutToLost = Stopwatch.GetElapsedTime(cutAt, lostAt);
        output.WriteLine($"{server.Name}: cut off → LeaseLost {cutToLost.TotalMilliseconds:0} ms (validity {LeaseSettings.Validity.TotalMilliseconds:0} ms after the last confirmed renew, renewed every {LeaseSettings.RenewInterval.TotalMilliseconds:0} ms); key PTTL then {left?.TotalMilliseconds:0} ms, checked {Stopwatch.GetElapsedTime(lostAt, checkedAt).TotalMilliseconds:0} ms after");

        ended.Reason.Should().Be(RunEndReason.LeaseLost);
        ended.Detail.Should().Contain("no renew was confirmed");
        (await run.Completion).Should().Be(RunEndReason.LeaseLost);
        run.AbortToken.IsCancellationRequested.Should().BeTrue("a lost lease cancels the provider at once, without grace");

        cutToLost.Should().BeLessThanOrEqualTo(LeaseSettings.Validity + TimeSpan.FromMilliseconds(500), "the last confirmed renew was sent before the cut");

        // The server expires the lease TTL after the last renew it executed, A gives up TTL − margin after sending it: what
        // the key has left when A gives up is the margin, less A's lateness and the renew's trip. More would mean A gave
        // up early (not at its validity end), none that the server could have handed the session on while A still ran it.
        left.Should().NotBeNull("A gives up before the server expires its lease");
        left!.Value.Should().BeGreaterThan(TimeSpan.Zero, "A gives up before the server expires its lease")
            .And.BeLessThanOrEqualTo(LeaseSettings.SafetyMargin + TimeSpan.FromMilliseconds(50), "A gives up at its validity end, not before");
        owner.Should().NotBeNull();
        owner!.HostId.Should().Be("A");
        refused.OwnerHostId.Should().Be("A");

        RunHandle taken = await StartUntilAcquiredAsync(hosts.B, "s", LeaseSettings.Ttl + LeaseSettings.Slack);
        long tookAt = Stopwatch.GetTimestamp();
        output.WriteLine($"{server.Name}: cut off → B acquired {Stopwatch.GetElapsedTime(cutAt, tookAt).TotalMilliseconds:0} ms; LeaseLost on A → B acquired {Stopwatch.GetElapsedTime(lostAt, tookAt).TotalMilliseconds:0} ms");
        taken.FencingToken.Should().BeGreaterThan(run.FencingToken);
        Stopwatch.GetElapsedTime(checkedAt, tookAt).Should().BeGreaterThanOrEqualTo(left.Value - TimeSpan.FromMilliseconds(50), "B gets the session only once the server has expired A's lease");
        Stopwatch.GetElapsedTime(cutAt, tookAt).Should().BeLessThanOrEqualTo(LeaseSettings.Ttl + LeaseSettings.Slack);
        await taken.DisposeAsync();
    }

    /// <summary>
    /// The resource fences: A writes with its token, is cut off (as a paused process would be), B takes over and writes
    /// with a larger token, then A comes back and writes with its old token — refused by the server-side check.
    /// </summary>
    public static async Task PausedOldOwnerWritesAsync(IRedisTestServer server, ITestOutputHelper output)
    {
        await using var hosts = await Hosts.StartAsync(server);
        var transcript = new FencedTranscript(hosts.Prefix + ":transcript:s");
        RunHandle old = await hosts.A.StartAsync("s");
        (await transcript.TryAppendAsync(hosts.DatabaseA, old.FencingToken, "A: turn 1")).Should().BeTrue();

        hosts.Proxy.BlackHole();
        RunHandle current = await StartUntilAcquiredAsync(hosts.B, "s", LeaseSettings.Ttl + LeaseSettings.Slack);
        (await transcript.TryAppendAsync(hosts.DatabaseB, current.FencingToken, "B: turn 1")).Should().BeTrue();

        // A wakes up unaware, still holding its old token, and writes.
        hosts.Proxy.Heal();
        bool lateWrite = await RetryAsync(() => transcript.TryAppendAsync(hosts.DatabaseA, old.FencingToken, "A: late write"));

        output.WriteLine($"{server.Name}: old token {old.FencingToken}, new token {current.FencingToken}; the old owner's late write accepted: {lateWrite}");
        lateWrite.Should().BeFalse("a larger token has written since");
        (await transcript.ReadFenceAsync(hosts.DatabaseB)).Should().Be(current.FencingToken);
        (await transcript.ReadLogAsync(hosts.DatabaseB)).Should().Equal("A: turn 1", "B: turn 1");
        (await transcript.TryAppendAsync(hosts.DatabaseB, current.FencingToken, "B: turn 2")).Should().BeTrue("the new owner keeps writing");
        (await old.Completion.WaitAsync(LeaseSettings.Slack)).Should().Be(RunEndReason.LeaseLost, "A's registry gave up the run as well");
        await current.DisposeAsync();
    }

    private static async Task<RunHandle> StartUntilAcquiredAsync(ActiveRunRegistry registry, string session, TimeSpan within)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(within.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return await registry.StartAsync(session);
            }
            catch (SessionBusyException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Retries a call whose connection is coming back from the partition (timeouts, a reconnect) for a few seconds.</summary>
    private static async Task<T> RetryAsync<T>(Func<Task<T>> call)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(LeaseSettings.Slack.TotalSeconds * 2 * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (e is RedisTimeoutException or RedisConnectionException && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Host A (through the proxy) and host B (direct), each with its own connection, store and registry.</summary>
    private sealed class Hosts : IAsyncDisposable
    {
        private readonly List<IAsyncDisposable> _owned = [];

        public string Prefix { get; } = LeaseSettings.NewPrefix();

        public LoopbackProxy Proxy { get; private set; } = null!;

        public ActiveRunRegistry A { get; private set; } = null!;

        public ActiveRunRegistry B { get; private set; } = null!;

        public IDatabase DatabaseA { get; private set; } = null!;

        public IDatabase DatabaseB { get; private set; } = null!;

        public static async Task<Hosts> StartAsync(IRedisTestServer server)
        {
            var hosts = new Hosts();
            try
            {
                hosts.Proxy = LoopbackProxy.Start(server.Port);
                (hosts.A, hosts.DatabaseA) = await hosts.AddHostAsync("A", hosts.Proxy.Port);
                (hosts.B, hosts.DatabaseB) = await hosts.AddHostAsync("B", server.Port);
                return hosts;
            }
            catch
            {
                await hosts.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            // The proxy first: a black-holed connection must not hold up the disposal of A's store and connection.
            if (Proxy is not null)
            {
                await Proxy.DisposeAsync();
            }

            for (int i = _owned.Count - 1; i >= 0; i--)
            {
                await _owned[i].DisposeAsync();
            }
        }

        private async Task<(ActiveRunRegistry Registry, IDatabase Database)> AddHostAsync(string hostId, int port)
        {
            ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(LeaseSettings.Connection(port));
            _owned.Add(multiplexer);
            var store = new RedisRunLeaseStore(multiplexer, new RedisRunLeaseStoreOptions { KeyPrefix = Prefix, ChannelPrefix = Prefix, OperationTimeout = LeaseSettings.AcquireTimeout });
            _owned.Add(store);
            var registry = new ActiveRunRegistry(LeaseSettings.Options(hostId), leaseStore: store);
            _owned.Add(registry);
            return (registry, multiplexer.GetDatabase());
        }
    }
}
