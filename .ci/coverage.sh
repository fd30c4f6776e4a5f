#!/usr/bin/env bash
# Coverage of src/RunSupervisor (coverlet, cobertura): runs the core test project once with the
# "XPlat Code Coverage" collector and prints ONE line:
#   coverage: line 97.1%, branch 92.3% (src/RunSupervisor)
# Exits non-zero if line < 95 % or branch < 90 % (or the tests fail, or no report was written).
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

status=0
if ! dotnet test tests/RunSupervisor.Tests/RunSupervisor.Tests.csproj -c Release \
    --collect:"XPlat Code Coverage" --settings "$out/coverage.runsettings" \
    --results-directory "$out/results" --verbosity quiet "$@" >"$out/test.log" 2>&1; then
  tail -n 30 "$out/test.log" >&2
  echo "coverage: the tests failed; see above" >&2
  status=1
fi

report="$(find "$out/results" -name 'coverage.cobertura.xml' -print -quit 2>/dev/null)"
if [ -z "$report" ]; then
  echo "coverage: no cobertura report was written (src/RunSupervisor)"
  exit 1
fi

# The root <coverage> element carries the totals of the included assembly: line-rate="0.97" branch-rate="0.92".
root="$(grep -o '<coverage [^>]*>' "$report" | head -n 1)"
line_rate="$(sed -n 's/.* line-rate="\([0-9.]*\)".*/\1/p' <<<"$root")"
branch_rate="$(sed -n 's/.* branch-rate="\([0-9.]*\)".*/\1/p' <<<"$root")"
if [ -z "$line_rate" ] || [ -z "$branch_rate" ]; then
  echo "coverage: could not read the rates from $report"
  exit 1
fi

read -r line branch verdict <<<"$(awk -v l="$line_rate" -v b="$branch_rate" -v ml="$MIN_LINE" -v mb="$MIN_BRANCH" \
  'BEGIN { printf "%.1f %.1f %s\n", l * 100, b * 100, ((l * 100 >= ml && b * 100 >= mb) ? "ok" : "low") }')"
echo "coverage: line ${line}%, branch ${branch}% (src/RunSupervisor)"
if [ "$verdict" != "ok" ]; then
  echo "coverage: below the bar (line >= ${MIN_LINE}%, branch >= ${MIN_BRANCH}%)" >&2
  status=1
fi
exit $status
