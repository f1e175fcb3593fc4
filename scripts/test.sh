#!/usr/bin/env bash
# Builds siphon and runs its tests; exits with ctest's status.
#
#   scripts/test.sh                 everything (unit + integration; servers start on their own)
#   scripts/test.sh -L unit         any other arguments go to ctest (-L, -R, -E, ...)
#   scripts/test.sh --sanitize      ASan + UBSan build in build-asan/
#   scripts/test.sh --no-fuzz       skip the fuzz step
#
# The build directory is build/ (build-asan/ with --sanitize) unless SIPHON_BUILD_DIR is set.
# Compiler progress lines are hidden; warnings, errors and test results are shown.
# A full run (no ctest arguments, no --sanitize; what CI runs) then builds the libFuzzer
# targets of tests/fuzz with clang in build-fuzz/ and runs each for SIPHON_FUZZ_SECONDS
# (default 60) from the seed corpus kept in the repo; a crash, leak or timeout fails the
# run (the input is kept as build-fuzz/tests/fuzz/crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0
fuzz=1
ctest_args=()
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    --no-fuzz) fuzz=0 ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
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

cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPHON_WERROR=ON)
if ((sanitize)); then
  build=${SIPHON_BUILD_DIR:-build-asan}
  cmake_args+=(-DSIPHON_SANITIZE=ON)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  build=${SIPHON_BUILD_DIR:-build}
fi
section "configure ($build)"
configure_quietly "$build" configure "${cmake_args[@]}"

section "build"
build_quietly "$build" build
stop_servers_on_exit "$build"

section "test"
status=0
# --no-tests=error: a filter that matches nothing must not pass as green.
ctest --test-dir "$build" --output-on-failure --no-tests=error -j2 "${ctest_args[@]}" || status=$?

if ((!fuzz || sanitize || ${#ctest_args[@]})); then
  exit "$status"
fi
fuzz_build=${SIPHON_FUZZ_BUILD_DIR:-build-fuzz}
fuzz_seconds=${SIPHON_FUZZ_SECONDS:-60}
section "fuzz: configure ($fuzz_build, clang)"
CC=clang CXX=clang++ configure_quietly "$fuzz_build" "fuzz configure" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPHON_WERROR=ON -DSIPHON_FUZZ=ON \
  -DSIPHON_FUZZ_SECONDS="$fuzz_seconds"
section "fuzz: build"
build_quietly "$fuzz_build" "fuzz build" --target siphon_fuzz_script siphon_fuzz_decoders siphon_fuzz_patterns
section "fuzz: ${fuzz_seconds} s per target"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
ctest --test-dir "$fuzz_build" -L fuzz --output-on-failure --no-tests=error || status=$?
exit "$status"
