# shellcheck shell=bash
# Steps shared by scripts/test.sh and scripts/faults.sh; sourced from the repository root.

section() { printf '\n== %s\n' "$*"; }

# configure_quietly DIR WHAT CMAKE_ARGS...: configures DIR with Ninja; the log is shown only
# when it fails, and the script exits saying "WHAT failed".
configure_quietly() {
  local dir=$1 what=$2
  shift 2
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" -G Ninja "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    echo "$what failed" >&2
    exit 1
  fi
  echo "ok"
}

# build_quietly DIR WHAT [--target T...]: builds without Ninja's "[n/N] Building ..." lines,
# which drown the warnings and errors that matter; exits saying "WHAT failed" on failure.
build_quietly() {
  local dir=$1 what=$2 status
  shift 2
  set +e
  cmake --build "$dir" -j2 "$@" 2>&1 | grep -v -E '^\[[0-9]+/[0-9]+\] '
  status=${PIPESTATUS[0]}
  set -e
  if ((status != 0)); then
    echo "$what failed" >&2
    exit 1
  fi
  echo "ok"
}

# stop_servers_on_exit DIR: the `servers` ctest fixture stops the test servers it started in
# DIR/test-servers; this covers a run cut short (Ctrl-C, a ctest crash), so no PostgreSQL or
# MariaDB is left behind.
stop_servers_on_exit() {
  servers_build_dir=$1
  trap stop_test_servers EXIT
}
# shellcheck disable=SC2317  # called by the EXIT trap
stop_test_servers() {
  if [[ -d "$servers_build_dir/test-servers/state" ]]; then
    ./scripts/dev/servers.sh stop "$servers_build_dir/test-servers" >/dev/null 2>&1 || true
  fi
}
