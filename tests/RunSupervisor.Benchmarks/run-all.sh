#!/usr/bin/env bash
# Runs every benchmark and harness mode of RunSupervisor.Benchmarks on this machine and collects the outputs in
# tests/RunSupervisor.Benchmarks/results/. Run it on a quiet machine: timings are only meaningful without
# concurrent builds or tests. About 10 minutes on 2 cores; needs about 1.5 GB of free RAM for the 1M scale step.
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
run --filter '*' --artifacts "$results/BenchmarkDotNet" | tee "$results/benchmarks.log"

echo "Results are in $results (benchmark tables: $results/BenchmarkDotNet/results/*.md)."
