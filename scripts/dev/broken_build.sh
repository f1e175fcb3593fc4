#!/usr/bin/env bash
# Shows that each fault scenario catches a bug: for every patch in
# tests/integration/faults/breaks/ (one small deliberate break per scenario), applies it to a
# throwaway copy of the tree, rebuilds siphon there, runs that scenario's test against it,
# reverts the patch, and prints a table. Every row must read FAILED (the test caught the
# break); the script exits non-zero otherwise.
#
#   scripts/dev/broken_build.sh                 every break (about 15-25 min; a first run
#                                               also builds the copy from scratch)
#   scripts/dev/broken_build.sh sigkill ...     only these scenarios (patch names)
#   scripts/dev/broken_build.sh --baseline      also run each test on the unbroken copy
#                                               first (it must pass)
#
# The copy of the tracked files (src/), its build (build/), its test servers (servers/) and
# the logs (logs/) live in SIPHON_BROKEN_DIR (default /tmp/siphon-broken) and are kept, so a
# later run rebuilds only what changed. The repository itself is never modified.
# Patch files start with three header lines (Scenario, Test: a gtest filter, Break: one
# line); `git apply` skips them. A patch the code has moved away from shows as PATCH DOES
# NOT APPLY: make the same break by hand in a scratch copy and save `git diff -U1` under the
# headers. Not run by scripts/test.sh: too slow for every CI run.
set -euo pipefail
cd "$(dirname "$0")/../.."

baseline=0
only=()
for arg in "$@"; do
  case "$arg" in
    --baseline) baseline=1 ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "unknown option $arg" >&2
      exit 2
      ;;
    *) only+=("$arg") ;;
  esac
done

breaks_dir=tests/integration/faults/breaks
work=${SIPHON_BROKEN_DIR:-/tmp/siphon-broken}
src=$work/src
build=$work/build
servers=$work/servers
logs=$work/logs
mkdir -p "$src" "$build" "$logs"

patches=()
if ((${#only[@]})); then
  for name in "${only[@]}"; do
    [[ -f "$breaks_dir/$name.patch" ]] || {
      echo "no break $breaks_dir/$name.patch" >&2
      exit 2
    }
    patches+=("$PWD/$breaks_dir/$name.patch")
  done
else
  for f in "$breaks_dir"/*.patch; do patches+=("$PWD/$f"); done
fi

section() { printf '\n== %s\n' "$*"; }
header() { sed -nE "s/^$2: (.*)/\\1/p" "$1" | head -1; }

section "copy ($src)"
# The tracked files as they are in the working tree. Only files whose content differs are
# copied, and they get a new mtime (an older mtime kept from the tree could hide the change
# from ninja), so a later run rebuilds only what changed.
git ls-files -z | rsync -rl --checksum --from0 --files-from=- ./ "$src/"
comm -13 <(git ls-files | sort) <(cd "$src" && find . -type f | sed 's|^\./||' | sort) |
  (cd "$src" && xargs -r rm -f --)
echo "ok"

section "configure ($build)"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSIPHON_WERROR=ON >"$logs/configure.log" 2>&1 || {
    cat "$logs/configure.log"
    exit 1
  }
fi
echo "ok"

build_copy() {
  cmake --build "$build" -j2 --target siphon siphon_fault_tests >"$1" 2>&1
}

section "build (unbroken)"
build_copy "$logs/build-unbroken.log" || {
  tail -40 "$logs/build-unbroken.log"
  echo "the unbroken copy does not build" >&2
  exit 1
}
echo "ok"

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  # Leave the copy unbroken and stop the servers this script started.
  if [[ -n "${applied:-}" ]]; then (cd "$src" && git apply -R "$applied") || true; fi
  ./scripts/dev/servers.sh stop "$servers" >/dev/null 2>&1 || true
}
trap cleanup EXIT
section "servers ($servers)"
./scripts/dev/servers.sh start "$servers" >"$logs/servers.log" 2>&1 || {
  cat "$logs/servers.log"
  exit 1
}
echo "ok"

# Runs one test of the copy; prints "passed" or "FAILED <file:line of the first failure>
# [(N rows differ)]".
run_test() {
  local filter=$1 log=$2 status=0
  SIPHON_TEST_SERVERS_ENV=$servers/env timeout 900 "$build/tests/siphon_fault_tests" \
    --gtest_filter="$filter" >"$log" 2>&1 || status=$?
  if ((status == 0)); then
    echo "passed"
  else
    local where differ
    where=$(grep -m1 -oE '[a-z_]+\.[ch]pp:[0-9]+: Failure' "$log" | sed 's/: Failure//' || true)
    ((status == 124)) && where="timed out"
    differ=$(grep -oE 'FAULTS .* mismatches=[0-9]+' "$log" | sed -E 's/.*mismatches=//' |
      awk '{ n += $1 } END { if (n > 0) printf " (%d rows differ)", n }')
    echo "FAILED ${where:-exit $status}$differ"
  fi
}

rows=()
all_caught=1
for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  scenario=$(header "$patch" Scenario)
  filter=$(header "$patch" Test)
  what=$(header "$patch" Break)
  section "$scenario: $what"
  base="-"
  if ((baseline)); then
    base=$(run_test "$filter" "$logs/$name-unbroken.log")
    echo "unbroken: $base"
  fi
  start=$(date +%s)
  if ! (cd "$src" && git apply "$patch"); then
    rows+=("$scenario|$what|$base|PATCH DOES NOT APPLY|-|-")
    all_caught=0
    continue
  fi
  applied=$patch
  if ! build_copy "$logs/build-$name.log"; then
    result="BUILD FAILED"
    where="see $logs/build-$name.log"
  else
    out=$(run_test "$filter" "$logs/$name.log")
    result=${out%% *}
    where=${out#* }
    [[ "$where" != "$out" ]] || where="-"
  fi
  (cd "$src" && git apply -R "$patch")
  applied=
  seconds=$(($(date +%s) - start))
  echo "broken: $result $where (${seconds} s; log $logs/$name.log)"
  [[ "$result" == "FAILED" ]] || all_caught=0
  [[ "$base" == "-" || "$base" == "passed" ]] || all_caught=0
  rows+=("$scenario|$what|$base|$result|$where|$seconds")
done

section "results"
fmt='%-19s %-72s %-9s %-7s %-38s %5s\n'
# shellcheck disable=SC2059  # the format is ours
printf "$fmt" scenario break unbroken broken "caught by" secs
for row in "${rows[@]}"; do
  IFS='|' read -r a b c d e f <<<"$row"
  # shellcheck disable=SC2059
  printf "$fmt" "$a" "$b" "$c" "$d" "$e" "$f"
done
if ((!all_caught)); then
  echo "a break was not caught (or a baseline failed)" >&2
  exit 1
fi
