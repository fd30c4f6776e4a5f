using System.Reflection;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>A subscriber whose SubscribeAsync waits for a gate before it reaches the real one (a SUBSCRIBE still on the wire).</summary>
public class SlowSubscriber : DispatchProxy
{
    private ISubscriber _inner = null!;
    private Task _gate = null!;
    private TaskCompletionSource _called = null!;

    public static ISubscriber Wrap(ISubscriber inner, Task gate, TaskCompletionSource called)
    {
        ISubscriber proxy = Create<ISubscriber, SlowSubscriber>();
        var self = (SlowSubscriber)(object)proxy;
        self._inner = inner;
        self._gate = gate;
        self._called = called;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (targetMethod!.Name == nameof(ISubscriber.SubscribeAsync) && targetMethod.ReturnType == typeof(Task))
        {
            _called.TrySetResult();
            return SubscribeLaterAsync(targetMethod, args);
        }

        return SlowSubscribeMultiplexer.Forward(_inner, targetMethod, args);
    }

    private async Task SubscribeLaterAsync(MethodInfo method, object?[]? args)
    {
        await _gate;
        await (Task)SlowSubscribeMultiplexer.Forward(_inner, method, args)!;
    }
}
