#!/usr/bin/env bash
# Coverage of src/RunSupervisor (coverlet, cobertura): runs the core's test project and the adapters' test projects
# with the "XPlat Code Coverage" collector (measuring the core assembly only), merges the reports and prints ONE line:
#   coverage: line 97.1%, branch 92.3% (src/RunSupervisor)
# Exits non-zero if line < 95 % or branch < 90 % (or the tests fail, or no report was written). The randomized stress
# workouts are not part of it (see below).
# Needs only the .NET SDK (coverlet.collector is a package reference of the test project).
# Extra arguments go to `dotnet test` (for example --no-build, or --artifacts-path DIR).
set -uo pipefail
cd "$(dirname "$0")/.."

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
MIN_LINE=95
MIN_BRANCH=90
out="$(mktemp -d "${TMPDIR:-/tmp}/runsupervisor-coverage.XXXXXX")"
trap 'rm -rf "$out"' EXIT

# Only the RunSupervisor assembly; source-generated code (the [LoggerMessage] bodies) is not ours to cover.
cat > "$out/coverage.runsettings" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<RunSettings>
  <DataCollectionRunSettings>
    <DataCollectors>
      <DataCollector friendlyName="XPlat Code Coverage">
        <Configuration>
          <Format>cobertura</Format>
          <Include>[RunSupervisor]*</Include>
          <ExcludeByAttribute>Obsolete,GeneratedCodeAttribute,CompilerGeneratedAttribute,ExcludeFromCodeCoverageAttribute</ExcludeByAttribute>
          <SkipAutoProps>true</SkipAutoProps>
        </Configuration>
      </DataCollector>
    </DataCollectors>
  </DataCollectionRunSettings>
</RunSettings>
XML

# The randomized stress workouts are left out: what they cover, the deterministic tests cover too (the figure moves by
# 0.1 % branch without them), and with them the figure would depend on the seed. The test step runs them.
deterministic='FullyQualifiedName!~Reliability.StressTests&FullyQualifiedName!~Reliability.RealTimeStressIntegrationTests'

status=0
# The core's own tests, and the adapters' tests for the core code only they exercise (the shared supervised stream and
# the adapters' option helpers live in the core, behind InternalsVisibleTo).
projects=(tests/RunSupervisor.Tests/RunSupervisor.Tests.csproj
  tests/RunSupervisor.Extensions.AI.Tests/RunSupervisor.Extensions.AI.Tests.csproj
  tests/RunSupervisor.Agents.Tests/RunSupervisor.Agents.Tests.csproj)
for project in "${projects[@]}"; do
  [ -f "$project" ] || continue
  name="$(basename "$project" .csproj)"
  if ! dotnet test "$project" -c Release \
      --collect:"XPlat Code Coverage" --settings "$out/coverage.runsettings" \
      --results-directory "$out/results/$name" --verbosity quiet --logger "console;verbosity=minimal" \
      --filter "$deterministic" "$@" \
      >"$out/test-$name.log" 2>&1; then
    # From the first failure on: each failed test's message, stack trace and output (a stress failure names its seed).
    # Or, when no test failed (a build error), the log's end.
    details="$(sed -n '/\[FAIL\]\|Cleanup Failure\|^  Failed /,$p' "$out/test-$name.log" | head -n 200)"
    [ -n "$details" ] || details="$(tail -n 30 "$out/test-$name.log")"
    printf '%s\n' "$details" >&2
    echo "coverage: the tests of $name failed; see above" >&2
    status=1
  fi
done

mapfile -t reports < <(find "$out/results" -name 'coverage.cobertura.xml' 2>/dev/null)
if [ "${#reports[@]}" -eq 0 ]; then
  echo "coverage: no cobertura report was written (src/RunSupervisor)"
  exit 1
fi

# The union of the reports: a line is covered if any run hit it; a line's branches count as covered as in the run that
# covered most of them (a lower bound of the union, since cobertura does not say which branches).
read -r line_rate branch_rate <<<"$(awk '
  /<class / { match($0, /filename="[^"]*"/); file = substr($0, RSTART + 10, RLENGTH - 11) }
  /<line / && file != "" {
    match($0, /number="[0-9]+"/); n = substr($0, RSTART + 8, RLENGTH - 9); key = file ":" n
    match($0, /hits="[0-9]+"/); h = substr($0, RSTART + 6, RLENGTH - 7) + 0
    lines[key] = 1; if (h > 0) hit[key] = 1
    if (match($0, /condition-coverage="[^"]*\([0-9]+\/[0-9]+\)"/)) {
      c = substr($0, RSTART, RLENGTH); sub(/.*\(/, "", c); sub(/\)"/, "", c); split(c, parts, "/")
      total[key] = parts[2]; if (parts[1] + 0 > covered[key] + 0) covered[key] = parts[1]
    }
  }
  /<\/class>/ { file = "" }
  END {
    for (k in lines) { nl++; if (k in hit) hl++ }
    for (k in total) { nb += total[k]; hb += covered[k] }
    printf "%.4f %.4f\n", (nl ? hl / nl : 0), (nb ? hb / nb : 1)
  }' "${reports[@]}")"

read -r line branch verdict <<<"$(awk -v l="$line_rate" -v b="$branch_rate" -v ml="$MIN_LINE" -v mb="$MIN_BRANCH" \
  'BEGIN { printf "%.1f %.1f %s\n", l * 100, b * 100, ((l * 100 >= ml && b * 100 >= mb) ? "ok" : "low") }')"
echo "coverage: line ${line}%, branch ${branch}% (src/RunSupervisor)"
if [ "$verdict" != "ok" ]; then
  echo "coverage: below the bar (line >= ${MIN_LINE}%, branch >= ${MIN_BRANCH}%)" >&2
  status=1
fi
exit $status
