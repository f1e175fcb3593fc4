#!/usr/bin/env bash
# Builds siphon and runs the fault-injection suite (ctest label `faults`) against real
# PostgreSQL and MariaDB servers; prints one table row per scenario and exits non-zero on
# any failed test or any row that differs between source and replica.
#
#   scripts/faults.sh              the bounded suite (a few minutes)
#   scripts/faults.sh --soak       longer runs (SIPHON_SOAK=1: 60 s of concurrent writers, ...)
#   scripts/faults.sh -R Kill      any other arguments go to ctest
#
# The build directory is build/ unless SIPHON_BUILD_DIR is set. The servers fixture starts
# the servers when they are not running and stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ctest_args=()
for arg in "$@"; do
  case "$arg" in
    --soak) export SIPHON_SOAK=1 ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) ctest_args+=("$arg") ;;
  esac
done

# shellcheck source=scripts/dev/steps.sh
. scripts/dev/steps.sh

section "dependencies"
./scripts/setup.sh
echo "ok"

build=${SIPHON_BUILD_DIR:-build}
section "configure ($build)"
configure_quietly "$build" configure -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPHON_WERROR=ON

section "build"
build_quietly "$build" build --target siphon siphon_fault_tests
stop_servers_on_exit "$build"

section "faults${SIPHON_SOAK:+ (soak)}"
log="$build/faults.log"
start=$(date +%s)
status=0
# -V: the tests' stdout (their FAULTS summary lines) goes to the log.
ctest --test-dir "$build" -L faults -V --no-tests=error "${ctest_args[@]}" >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))
grep -E '(Passed|Failed|\*\*\*|Not Run|tests passed|tests failed)' "$log" | grep -E '^ *[0-9]+/[0-9]+ Test|tests (passed|failed)' || true
if ((status != 0)); then
  echo
  echo "failures (full output in $log):"
  grep -E '^[0-9]+: .*(Failure|error:|Expected|Which is|mismatch|first:)' "$log" | head -40 || true
fi

section "results"
lines=$(grep -oE 'FAULTS scenario=.*$' "$log" || true)
# The scenario's other key=value fields (CPU while a server was down, outages seen by the
# event handlers, ...) go to the last column.
fmt='%-20s %6s %7s %10s %11s %11s %11s  %s\n'
# shellcheck disable=SC2059  # the format is ours
printf "$fmt" scenario runs faults rows mismatches lag_p50_ms lag_p99_ms notes
mismatched=0
while IFS= read -r line; do
  [[ -n "$line" ]] || continue
  field() { sed -nE "s/.* $1=([^ ]*).*/\\1/p" <<<" $line"; }
  mm=$(field mismatches)
  notes=$(tr ' ' '\n' <<<"${line#FAULTS }" |
    { grep -vE '^(scenario|runs|faults|rows|mismatches|lag_p50_ms|lag_p99_ms)=' || true; } |
    paste -sd ' ' -)
  # shellcheck disable=SC2059
  printf "$fmt" "$(field scenario)" "$(field runs)" "$(field faults)" "$(field rows)" "$mm" \
    "$(field lag_p50_ms)" "$(field lag_p99_ms)" "$notes"
  [[ "$mm" == "0" ]] || mismatched=1
done <<<"$lines"
echo
echo "suite time: ${elapsed} s"
if [[ -z "$lines" ]]; then
  echo "no FAULTS lines: no scenario reported" >&2
  exit 1
fi
if ((mismatched)); then
  echo "rows differ between source and replica" >&2
  exit 1
fi
exit "$status"
