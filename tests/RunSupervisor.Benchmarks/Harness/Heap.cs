namespace RunSupervisor.Benchmarks.Harness;

/// <summary>Managed-heap measurements.</summary>
public static class Heap
{
    /// <summary>Bytes in use on the GC heap after full, blocking, compacting collections (finalizers run in between).</summary>
    /// <returns>The live bytes.</returns>
    public static long LiveBytesAfterFullCollection()
    {
        for (int i = 0; i < 2; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: false);
    }
}
