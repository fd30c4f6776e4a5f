namespace RunSupervisor.Tests.TestSupport;

/// <summary>
/// Calls a public member of <see cref="ActiveRunRegistry"/> by name, so one theory can cover every member that takes a
/// session id (bad input) or every member at all (after disposal).
/// </summary>
internal static class RegistryMemberCalls
{
    public static void CallWithSessionId(ActiveRunRegistry registry, string member, string sessionId)
    {
        switch (member)
        {
            case "Start": _ = registry.Start(sessionId); break;
            case "TryStart": _ = registry.TryStart(sessionId, out _); break;
            case "IsActive": _ = registry.IsActive(sessionId); break;
            case "TryGetRun": _ = registry.TryGetRun(sessionId, out _); break;
            case "TryAbort": _ = registry.TryAbort(sessionId); break;
            case "WaitForRunEndAsync": _ = registry.WaitForRunEndAsync(sessionId, TestTime.WaitTimeout); break;
            case "RunAsync<T>": _ = registry.RunAsync(sessionId, _ => Task.FromResult(1)); break;
            case "RunAsync": _ = registry.RunAsync(sessionId, _ => Task.CompletedTask); break;
            default: throw new ArgumentOutOfRangeException(nameof(member), member, "Unknown member.");
        }
    }

    public static void CallAfterDispose(ActiveRunRegistry registry, string member)
    {
        switch (member)
        {
            case "ActiveCount": _ = registry.ActiveCount; break;
            case "AbandonedCount": _ = registry.AbandonedCount; break;
            case "GetActiveRuns": _ = registry.GetActiveRuns(); break;
            case "GetAbandonedRuns": _ = registry.GetAbandonedRuns(); break;
            case "DrainAsync": _ = registry.DrainAsync(TestTime.WaitTimeout); break;
            default: CallWithSessionId(registry, member, "s2"); break;
        }
    }
}
