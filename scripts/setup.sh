#!/usr/bin/env bash
# Installs the Debian packages siphon needs to build, test and benchmark.
#
# Only missing packages are installed, and the package lists are refreshed only when
# something must be installed, so a second run takes well under a second. Runs as root
# (or through sudo) on Debian 12. A package the archive does not offer is reported and
# skipped, so one optional tool never blocks the build.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  liblua5.4-dev lua5.4
  libpq-dev libmariadb-dev libsqlite3-dev sqlite3
  libuv1-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev
  libcurl4-openssl-dev libhttp-parser-dev libssl-dev
  openssl # the TLS tests make their certificates with it
  postgresql mariadb-server mariadb-client
  clang-format curl python3 python3-psycopg2
  prometheus # provides promtool, which checks the /metrics output
  clang libclang-rt-14-dev # libFuzzer and the sanitizers for tests/fuzz (SIPHON_FUZZ=ON)
  locales # localedef, for the German locale below
)

log() { printf 'setup: %s\n' "$*" >&2; }

installed() {
  # "ii" = wanted and installed; anything else (absent, half-installed, removed) counts as missing.
  dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null | awk '$2 == "ii" { print $1 }'
}

# A test runs the PostgreSQL server in German (lc_messages), which needs the locale.
make_locale() {
  locale -a 2>/dev/null | grep -qix 'de_DE.utf8' && return 0
  local run=()
  ((EUID == 0)) || run=(sudo -n)
  "${run[@]}" localedef -i de_DE -f UTF-8 de_DE.UTF-8 ||
    log "WARNING: could not make the de_DE.UTF-8 locale (one fault test needs it)"
}

mapfile -t have < <(installed "${packages[@]}")
missing=()
for p in "${packages[@]}"; do
  found=0
  for h in "${have[@]}"; do
    if [[ "$h" == "$p" ]]; then
      found=1
      break
    fi
  done
  ((found)) || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  make_locale
  exit 0
fi

log "missing packages: ${missing[*]}"

sudo_cmd=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null; then
    sudo_cmd=(sudo -n)
  else
    log "not root and no sudo: install these packages by hand: ${missing[*]}"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 --no-install-recommends)

"${sudo_cmd[@]}" apt-get update -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 >/dev/null

has_candidate() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

installable=()
for p in "${missing[@]}"; do
  if has_candidate "$p"; then
    installable+=("$p")
  else
    log "WARNING: package '$p' is not available from the configured archives; skipping it"
  fi
done
((${#installable[@]})) || exit 0

# The database packages would start their default system-wide servers on install; the
# tests start their own throwaway servers, so keep service starts off while installing
# (the usual policy-rc.d convention), unless the machine already has its own policy.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod +x "$policy"
  added_policy=1
fi
cleanup() { ((added_policy)) && "${sudo_cmd[@]}" rm -f "$policy"; return 0; }
trap cleanup EXIT

log "installing: ${installable[*]}"
if ! "${sudo_cmd[@]}" apt-get install "${apt_opts[@]}" "${installable[@]}" >/tmp/siphon-setup-apt.log 2>&1; then
  # One broken package must not take the others down with it: retry one by one.
  log "bulk install failed (see /tmp/siphon-setup-apt.log); retrying package by package"
  for p in "${installable[@]}"; do
    if ! "${sudo_cmd[@]}" apt-get install "${apt_opts[@]}" "$p" >>/tmp/siphon-setup-apt.log 2>&1; then
      log "WARNING: could not install '$p' (see /tmp/siphon-setup-apt.log)"
    fi
  done
fi

mapfile -t have < <(installed "${missing[@]}")
log "installed ${#have[@]} of ${#missing[@]} missing packages"
make_locale
