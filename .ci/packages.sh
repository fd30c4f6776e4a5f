#!/usr/bin/env bash
# Packaging checks for RunSupervisor, RunSupervisor.Hosting, RunSupervisor.HealthChecks, RunSupervisor.Extensions.AI,
# RunSupervisor.Agents and RunSupervisor.Redis:
#   1. dotnet pack -c Release: a .nupkg and a .snupkg per package, each with its README, licence and Source Link
#      (package validation and the public API analyzers run as part of the build);
#   2. a consumer (tests/PackageConsumer) that references the packages AS PACKAGES from a local folder feed is
#      restored, built with warnings as errors and run (it exits non-zero if any check fails);
#   3. the same consumer is published with Native AOT when clang is available, otherwise trimmed (PublishTrimmed with
#      the trim and AOT analyzers on, one warning per issue) - any trim/AOT warning fails the step.
# Needs only the .NET SDK (and nuget.org for the consumer's other dependencies). A unique version per run means the
# NuGet cache can never hand back a stale package. Exit code 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

root="$(pwd)"
feed="$root/artifacts/package-feed"
work="$root/artifacts/package-check"
version="0.1.0-ci.$(date -u +%Y%m%d%H%M%S).$$"
packages=(RunSupervisor RunSupervisor.Hosting RunSupervisor.HealthChecks RunSupervisor.Extensions.AI RunSupervisor.Agents RunSupervisor.Redis)

step() { printf '\n=== %s\n' "$*"; }

rm -rf "$feed" "$work"
mkdir -p "$feed" "$work"

step "pack $version"
for p in "${packages[@]}"; do
  dotnet pack "src/$p/$p.csproj" -c Release -p:Version="$version" -o "$feed" \
    --artifacts-path "$work/pack" -warnaserror
done

step "package contents"
for p in "${packages[@]}"; do
  nupkg="$feed/$p.$version.nupkg"
  snupkg="$feed/$p.$version.snupkg"
  [ -f "$nupkg" ] || { echo "missing $nupkg" >&2; exit 1; }
  [ -f "$snupkg" ] || { echo "missing $snupkg" >&2; exit 1; }
  listing="$(unzip -l "$nupkg")"
  for entry in README.md "lib/net10.0/$p.dll" "lib/net10.0/$p.xml"; do
    grep -q " $entry\$" <<<"$listing" || { echo "$nupkg lacks $entry" >&2; exit 1; }
  done
  nuspec="$(unzip -p "$nupkg" "$p.nuspec")"
  for field in '<license type="expression">MIT</license>' '<readme>README.md</readme>' '<description>' '<tags>' '<repository '; do
    grep -qF "$field" <<<"$nuspec" || { echo "$p.nuspec lacks $field" >&2; exit 1; }
  done
  symbols="$(unzip -l "$snupkg")"
  grep -q "lib/net10.0/$p.pdb" <<<"$symbols" || { echo "$snupkg lacks the pdb" >&2; exit 1; }
  echo "$p: nupkg + snupkg, README, MIT, description, tags, repository metadata"
done

consumer="tests/PackageConsumer/PackageConsumer.csproj"
step "consumer: restore and build against the packages"
dotnet build "$consumer" -c Release -p:RunSupervisorVersion="$version" --artifacts-path "$work/consumer" -warnaserror
# Proof that the packages (not the projects) were used: the assets file names the local feed's version.
grep -q "\"RunSupervisor.Hosting/$version\"" "$work/consumer/obj/PackageConsumer/project.assets.json" \
  || { echo "the consumer did not restore RunSupervisor.Hosting $version from the local feed" >&2; exit 1; }

step "consumer: run"
timeout 120 dotnet run --project "$consumer" -c Release --no-build -p:RunSupervisorVersion="$version" --artifacts-path "$work/consumer"

rid="$(dotnet --info | sed -n 's/^ *RID: *//p' | head -1)"
if command -v clang >/dev/null 2>&1; then
  step "consumer: Native AOT publish ($rid), warnings as errors"
  mode=(-p:PublishAot=true)
else
  step "consumer: trimmed publish ($rid) with the trim and AOT analyzers, warnings as errors (no clang here for Native AOT)"
  mode=(-p:PublishTrimmed=true --self-contained)
fi
dotnet publish "$consumer" -c Release -r "$rid" "${mode[@]}" -p:RunSupervisorVersion="$version" \
  --artifacts-path "$work/publish" -warnaserror -o "$work/published"
timeout 120 "$work/published/PackageConsumer"

echo
echo "packages: ${packages[*]} $version packed, consumed as packages, published with zero trim/AOT warnings"
