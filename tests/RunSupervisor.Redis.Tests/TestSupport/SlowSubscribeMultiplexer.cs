using System.Reflection;
using StackExchange.Redis;

namespace RunSupervisor.Redis.Tests.TestSupport;

/// <summary>Forwards every call to a real connection; its subscriber's SubscribeAsync waits for a gate first.</summary>
public class SlowSubscribeMultiplexer : DispatchProxy
{
    private object _inner = null!;
    private Task _gate = null!;
    private TaskCompletionSource _called = null!;
    private object? _subscriber;

    public static IConnectionMultiplexer Wrap(IConnectionMultiplexer inner, Task gate, TaskCompletionSource called)
    {
        IConnectionMultiplexer proxy = Create<IConnectionMultiplexer, SlowSubscribeMultiplexer>();
        var self = (SlowSubscribeMultiplexer)(object)proxy;
        self._inner = inner;
        self._gate = gate;
        self._called = called;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (targetMethod!.Name == nameof(IConnectionMultiplexer.GetSubscriber))
        {
            var real = (ISubscriber)Forward(_inner, targetMethod, args)!;
            return _subscriber ??= SlowSubscriber.Wrap(real, _gate, _called);
        }

        return Forward(_inner, targetMethod, args);
    }

    internal static object? Forward(object target, MethodInfo method, object?[]? args)
    {
        try
        {
            return method.Invoke(target, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }
}
