#!/usr/bin/env bash
# Runs every benchmark and harness mode of RunSupervisor.Benchmarks on this machine and collects the outputs in
# tests/RunSupervisor.Benchmarks/results/. Run it on a quiet machine: timings are only meaningful without
# concurrent builds or tests. About 25 minutes on 2 cores; needs about 1.5 GB of free RAM for the 1M scale step.
# With redis-server on PATH the Redis cases run against it as well as against the in-process Garnet server.
set -euo pipefail
cd "$(dirname "$0")/../.."

project=tests/RunSupervisor.Benchmarks
results="$project/results"
mkdir -p "$results"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

dotnet build "$project" -c Release
run() { dotnet run -c Release --no-build --project "$project" -- "$@"; }

run alloc --types | tee "$results/alloc.md"
run scale --out "$results/scale.csv" | tee "$results/scale.md"
run chart --in "$results/scale.csv" --out "$results/scale.svg"
run evict --out "$results/evict-handle.csv" | tee "$results/evict-handle.md"
run evict --api runasync --out "$results/evict-runasync.csv" | tee "$results/evict-runasync.md"
run profile | tee "$results/profile-1k.txt"
run profile --active-runs 100000 --rounds 9 | tee "$results/profile-100k.txt"
run starve --out "$results/starve.csv" | tee "$results/starve.md"
run admit --out "$results/admit.csv" | tee "$results/admit.md"
if command -v redis-server >/dev/null; then
  run lease-cpu --server redis-server --out "$results/lease-cpu-redis.csv" | tee "$results/lease-cpu-redis.md"
fi
run lease-cpu --server garnet --out "$results/lease-cpu-garnet.csv" | tee "$results/lease-cpu-garnet.md"

# Every BenchmarkDotNet class: StartRelease (a), RunAsync (b, with the Polly + Task.Run peer), Query (c),
# ConcurrentStartRelease (d), AgentTurn (e), Admission, HandOff, Progress, RedisLease (f), RedisRenew (g) and
# SessionTable (h).
run --filter '*' --artifacts "$results/BenchmarkDotNet" | tee "$results/benchmarks.log"

# The tables, under short names (the BenchmarkDotNet folder itself is not committed).
for report in "$results"/BenchmarkDotNet/results/*-report-github.md; do
  name=$(basename "$report" -report-github.md)
  cp "$report" "$results/${name##*.}.md"
done

# A sampling profile of case (a), when Linux perf is installed.
if command -v perf >/dev/null; then
  DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 perf record -F 2999 -g -o "$results/perf.data" \
    dotnet "$project/bin/Release/net10.0/RunSupervisor.Benchmarks.dll" profile --impl runsupervisor --ops 3000000
  # head closes the pipe early: that SIGPIPE is expected, not a failure of the run.
  { perf report -i "$results/perf.data" --no-children --sort dso,symbol --stdio -g none | grep '%' | head -30 > "$results/perf-start-release.txt"; } || true
  rm -f "$results/perf.data"
fi

echo "Results are in $results (benchmark tables: $results/BenchmarkDotNet/results/*.md)."
