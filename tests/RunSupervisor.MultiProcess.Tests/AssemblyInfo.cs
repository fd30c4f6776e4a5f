// Every test here measures real time on a machine with few cores: one at a time, so no test's timing is another's load.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
