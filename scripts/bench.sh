#!/usr/bin/env bash
# siphon's benchmark (DESIGN §8, issue 6): builds siphon and the baselines, starts throwaway
# servers, generates the bench table and times siphon against each baseline side by side,
# alternating, on a fresh target file every run; prints medians, ratios, targets, verdicts, and
# checks that siphon's target holds the same data as the C floor's (a wrong siphon never looks fast).
#
#   scripts/bench.sh [--rows N] [--reps K] [--quick] [--big] [--big-rows N]
#                    [--idle-seconds S] [--no-build] [--siphon PATH] [--servers-env FILE]
#
#   --rows N          rows in the bench table (default 1000000)
#   --reps K          repetitions per contestant (default 3); medians are reported
#   --quick           smoke run: 100000 rows, 1 rep, 10 s idle window
#   --big             also measure peak RSS at --big-rows (default 10000000) against --rows
#   --idle-seconds S  length of the idle-CPU window (default 60; 0 skips it)
#   --no-build        use the binaries already in build-bench
#   --siphon PATH     measure this siphon binary (say, another build) instead of build-bench's
#   --servers-env F   use running servers described by F (servers.sh env format) instead of
#                     starting throwaway ones
#
# Output files (targets, generated scripts, logs) go to build-bench/bench/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-bench
SERVERS=$BUILD/servers
WORK=$BUILD/bench

ROWS=1000000
REPS=3
BIG=0
BIG_ROWS=10000000
IDLE_SECONDS=60
IDLE_TABLES=100
DO_BUILD=1
SERVERS_ENV=""
SIPHON_BIN=""

die() {
  printf 'bench.sh: error: %s\n' "$*" >&2
  exit 1
}
say() { printf 'bench.sh: %s\n' "$*" >&2; }
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --rows) ROWS=${2:?}; shift 2 ;;
    --reps) REPS=${2:?}; shift 2 ;;
    --quick) ROWS=100000; REPS=1; IDLE_SECONDS=10; shift ;;
    --big) BIG=1; shift ;;
    --big-rows) BIG_ROWS=${2:?}; BIG=1; shift 2 ;;
    --idle-seconds) IDLE_SECONDS=${2:?}; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --siphon) SIPHON_BIN=${2:?}; shift 2 ;;
    --servers-env) SERVERS_ENV=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$ROWS" =~ ^[1-9][0-9]*$ && "$REPS" =~ ^[1-9][0-9]*$ && "$BIG_ROWS" =~ ^[1-9][0-9]*$ &&
  "$IDLE_SECONDS" =~ ^[0-9]+$ ]] || die "--rows, --reps, --big-rows and --idle-seconds take positive integers"

# --- tools -------------------------------------------------------------------------------

PYTHON=/usr/bin/python3 # Debian's python: python3-psycopg2 installs there
apt_install() {
  ((EUID == 0)) || die "missing $*; install it (apt-get install $*) or run as root"
  say "installing $*"
  apt-get install -y "$@" >"$WORK/apt.log" 2>&1 || die "apt-get install $* failed (see $WORK/apt.log)"
}
mkdir -p "$WORK"
rm -f "$WORK"/*.time "$WORK"/*.db "$WORK"/*.db-wal "$WORK"/*.db-shm "$WORK"/siphon_*.log
[[ -x /usr/bin/time ]] || apt_install time
"$PYTHON" -c 'import psycopg2' 2>/dev/null || apt_install python3-psycopg2
command -v sqlite3 >/dev/null || apt_install sqlite3
command -v psql >/dev/null || die "psql not found (run scripts/setup.sh)"
MYSQL_CLIENT=$(command -v mariadb || command -v mysql || true)
[[ -n "$MYSQL_CLIENT" ]] || die "mariadb client not found (run scripts/setup.sh)"

# --- build -------------------------------------------------------------------------------

SIPHON=${SIPHON_BIN:-$BUILD/siphon}
SIPHON_STATE=ok # ok | "build failed" | "missing"
if ((DO_BUILD)); then
  say "building (Release) in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIPHON_TESTS=ON \
    >"$WORK/cmake.log" 2>&1 || die "cmake failed (see $WORK/cmake.log)"
  ninja -C "$BUILD" -j2 pg_floor mysql_floor >"$WORK/build-floors.log" 2>&1 ||
    die "building the C floors failed (see $WORK/build-floors.log)"
  # siphon failing to build must not stop the baselines from being measured; a stale binary
  # from an earlier build must not be measured either.
  if [[ -z "$SIPHON_BIN" ]] && ! ninja -C "$BUILD" -j2 siphon >"$WORK/build-siphon.log" 2>&1; then
    SIPHON_STATE="build failed"
    say "siphon did not build (see $WORK/build-siphon.log); its rows will say so"
  fi
fi
PG_FLOOR=$BUILD/tests/bench/pg_floor
MYSQL_FLOOR=$BUILD/tests/bench/mysql_floor
[[ -x "$PG_FLOOR" && -x "$MYSQL_FLOOR" ]] || die "C floors not built (drop --no-build)"
if [[ "$SIPHON_STATE" == ok && ! -x "$SIPHON" ]]; then
  SIPHON_STATE="not built"
  say "no siphon binary at $SIPHON; its rows will say so"
fi

# --- servers -----------------------------------------------------------------------------

if [[ -z "$SERVERS_ENV" ]]; then
  say "starting throwaway servers in $SERVERS"
  "$ROOT/scripts/dev/servers.sh" start "$SERVERS" >"$WORK/servers.log" 2>&1 ||
    die "servers.sh start failed (see $WORK/servers.log)"
  trap '"$ROOT/scripts/dev/servers.sh" stop "$SERVERS" >>"$WORK/servers.log" 2>&1 || true' EXIT
  SERVERS_ENV=$SERVERS/env
fi
[[ -f "$SERVERS_ENV" ]] || die "no server env file $SERVERS_ENV"
# shellcheck disable=SC1090
. "$SERVERS_ENV"
for v in PG_HOST PG_PORT PG_USER PG_PASSWORD MYSQL_HOST MYSQL_PORT MYSQL_USER MYSQL_PASSWORD; do
  [[ -n "${!v:-}" ]] || die "$SERVERS_ENV does not set $v"
done

DB=siphon_bench
export PGPASSWORD=$PG_PASSWORD MYSQL_PWD=$MYSQL_PASSWORD
PG_DSN="host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=$DB"
pg_sql() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "${PG_DB:-$DB}" "$@"; }
my_sql() { "$MYSQL_CLIENT" --no-defaults -N -B -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" "$@"; }

PG_DB=postgres pg_sql -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
  PG_DB=postgres pg_sql -c "CREATE DATABASE $DB"
my_sql -e "CREATE DATABASE IF NOT EXISTS $DB"
# The default 128M pool would make MariaDB's side of the bench a disk benchmark.
my_sql -e "SET GLOBAL innodb_buffer_pool_size = 1073741824" 2>/dev/null || true

# --- data --------------------------------------------------------------------------------

# The 7-column table of issue 6. Every third c_null is NULL and every seventh holds a tab and
# a backslash, so COPY escapes and NULLs are on the measured path (and in the checksum).
pg_generate() { # TABLE ROWS
  local t=$1 n=$2
  pg_sql <<EOF
DROP TABLE IF EXISTS $t;
CREATE TABLE $t (id bigint NOT NULL, c_int integer NOT NULL, c_text text NOT NULL,
  c_num numeric(12,2) NOT NULL, c_null text, c_json jsonb NOT NULL, c_ts timestamptz NOT NULL);
INSERT INTO $t
SELECT g, (g * 7919) % 1000003, 'customer-' || md5(g::text), ((g * 37) % 10000000) / 100.0,
       CASE WHEN g % 3 = 0 THEN NULL WHEN g % 7 = 0 THEN E'tab\there \\\\ back ' || g
            ELSE 'note ' || g END,
       jsonb_build_object('n', g, 'tag', 't' || (g % 100), 'ok', g % 2 = 0),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' + (g % 1000) * interval '1 millisecond'
FROM generate_series(1::bigint, $n) g;
ALTER TABLE $t ADD PRIMARY KEY (id);
CREATE INDEX ${t}_c_ts_id ON $t (c_ts, id);
VACUUM ANALYZE $t;
EOF
}

my_generate() { # ROWS
  local n=$1
  my_sql "$DB" <<EOF
DROP TABLE IF EXISTS bench;
CREATE TABLE bench (id BIGINT NOT NULL PRIMARY KEY, c_int INT NOT NULL, c_text VARCHAR(64) NOT NULL,
  c_num DECIMAL(12,2) NOT NULL, c_null TEXT NULL, c_json JSON NOT NULL, c_ts TIMESTAMP(6) NOT NULL)
  ENGINE=InnoDB;
SET time_zone = '+00:00';
INSERT INTO bench
SELECT seq, (seq * 7919) % 1000003, CONCAT('customer-', MD5(seq)), ((seq * 37) % 10000000) / 100,
       CASE WHEN seq % 3 = 0 THEN NULL WHEN seq % 7 = 0 THEN CONCAT('tab\there \\\\ back ', seq)
            ELSE CONCAT('note ', seq) END,
       JSON_OBJECT('n', seq, 'tag', CONCAT('t', seq % 100), 'ok', seq % 2 = 0),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq % 1000) * 1000 MICROSECOND
FROM seq_1_to_$n;
ANALYZE TABLE bench;
EOF
}

say "generating $ROWS rows in PostgreSQL and MariaDB"
t0=$SECONDS
pg_generate bench "$ROWS" || die "generating the PostgreSQL table failed"
my_generate "$ROWS" >/dev/null || die "generating the MariaDB table failed"
say "generated in $((SECONDS - t0)) s"
# Warm both servers' caches so the first contestant does not pay for cold pages.
pg_sql -c "SELECT count(*), sum(length(c_text)) FROM bench" >/dev/null
my_sql "$DB" -e "SELECT count(*), sum(length(c_text)) FROM bench" >/dev/null
PG_COUNT=$(pg_sql -c "SELECT count(*) FROM bench")
MY_COUNT=$(my_sql "$DB" -e "SELECT count(*) FROM bench")

# --- contestants -------------------------------------------------------------------------

# A checksum over every column that both the floors and siphon store (timestamps compared as
# instants, so "…Z" and "…+00:00" spellings both pass; numeric compared by value).
CHECKSUM_SQL="SELECT count(*), sum(id), sum(c_int), sum(length(c_text)),
  sum(CAST(round(c_num * 100) AS INTEGER)), count(c_null), sum(length(c_null)),
  sum(length(c_json)), sum(CAST(strftime('%s', c_ts) AS INTEGER)),
  sum(CAST(round(strftime('%f', c_ts) * 1000) AS INTEGER)) FROM bench"
checksum() { sqlite3 -readonly "$1" "$CHECKSUM_SQL" 2>&1 | tr -s '\n' ' ' | sed 's/ $//'; }
rows_of() { printf '%s' "${1%%|*}"; } # the count(*) field of a checksum

declare -A TIMES RSS CPU FAIL CHECK ERRLOG RUNS
LIMIT_SECONDS=$((120 + ROWS / 2000))

# run_one NAME TARGET CMD... : one timed run on a fresh target. Wall time is measured outside
# the process (start-up and connecting included, for every contestant alike).
run_one() {
  rm -f "$2" "$2-wal" "$2-shm"
  run_again "$@"
}
# run_again NAME TARGET CMD... : the same on the target as the run before left it.
run_again() {
  local name=$1 target=$2
  shift 2
  local log=$WORK/$name.log t0 t1 rc=0
  t0=$(date +%s%N)
  BENCH_TARGET=$target timeout -k 10 "$LIMIT_SECONDS" /usr/bin/time -v -o "$WORK/$name.time" \
    "$@" >"$log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if ((rc != 0)); then
    FAIL[$name]="exit $rc"
    ((rc != 124)) || FAIL[$name]+=", timed out after ${LIMIT_SECONDS}s"
    ERRLOG[$name]=$log
    return 1
  fi
  TIMES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "
  RSS[$name]+="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/$name.time") "
  # The contestant's own CPU time (user + system, servers excluded): steadier than wall time
  # on a busy machine.
  CPU[$name]+="$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$WORK/$name.time") "
  return 0
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) exit; if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
  else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { printf '%s' "${TIMES[$1]:-}" | median; }
med_rss_mb() { printf '%s' "${RSS[$1]:-}" | median | awk '$1 != "" { printf "%.1f", $1 / 1024 }'; }

# Verifies a target against a reference checksum; records the first mismatch.
verify() { # NAME TARGET REFERENCE
  local got
  got=$(checksum "$2")
  if [[ "$got" != "$3" ]]; then
    CHECK[$1]="MISMATCH: got [$got] want [$3]"
    return 1
  fi
  [[ -n "${CHECK[$1]:-}" ]] || CHECK[$1]=ok
}

siphon_usable() { # NAME: false (and the reason recorded) when siphon cannot be run
  if [[ "$SIPHON_STATE" != ok ]]; then
    FAIL[$1]=$SIPHON_STATE
    return 1
  fi
  [[ -z "${FAIL[$1]:-}" ]]
}

export BENCH_PG_DSN="$PG_DSN password=$PG_PASSWORD"
export BENCH_MYSQL_HOST=$MYSQL_HOST BENCH_MYSQL_PORT=$MYSQL_PORT BENCH_MYSQL_USER=$MYSQL_USER
export BENCH_MYSQL_PASSWORD=$MYSQL_PASSWORD BENCH_MYSQL_DATABASE=$DB

cat >"$WORK/pg.lua" <<'EOF'
local pg = siphon.postgres { dsn = siphon.env("BENCH_PG_DSN") }
siphon.target { path = siphon.env("BENCH_TARGET") }
siphon.replicate "bench" { source = pg, from = "public.bench", key = "id", batch = 5000 }
EOF
cat >"$WORK/pg_lua.lua" <<'EOF'
local pg = siphon.postgres { dsn = siphon.env("BENCH_PG_DSN") }
siphon.target { path = siphon.env("BENCH_TARGET") }
siphon.replicate "bench" { source = pg, from = "public.bench", key = "id", batch = 5000,
  transform = function(row) return row end }
EOF
# A 3-field rewrite (issue 4): lower-case a text, round a number, derive a declared column.
cat >"$WORK/pg_rw.lua" <<'EOF'
local pg = siphon.postgres { dsn = siphon.env("BENCH_PG_DSN") }
siphon.target { path = siphon.env("BENCH_TARGET") }
local lower, sub, floor = string.lower, string.sub, math.floor
siphon.replicate "bench" { source = pg, from = "public.bench", key = "id", batch = 5000,
  columns_out = { c_kind = "TEXT" },
  transform = function(row)
    row.c_text = lower(row.c_text)
    row.c_num = floor(tonumber(row.c_num) + 0.5)
    row.c_kind = sub(row.c_text, 1, 8)
    return row
  end }
EOF
cat >"$WORK/mysql.lua" <<'EOF'
local db = siphon.mysql { host = siphon.env("BENCH_MYSQL_HOST"),
  port = tonumber(siphon.env("BENCH_MYSQL_PORT")), user = siphon.env("BENCH_MYSQL_USER"),
  password = siphon.env("BENCH_MYSQL_PASSWORD"), database = siphon.env("BENCH_MYSQL_DATABASE") }
siphon.target { path = siphon.env("BENCH_TARGET") }
siphon.replicate "bench" { source = db, from = "bench", key = "id", batch = 5000 }
EOF
cat >"$WORK/incr.lua" <<'EOF'
local pg = siphon.postgres { dsn = siphon.env("BENCH_PG_DSN") }
siphon.target { path = siphon.env("BENCH_TARGET") }
siphon.replicate "bench" { source = pg, from = "public.bench", key = "id",
  cursor = { "c_ts", "id" }, batch = 5000 }
EOF

# --- scenario 1: PostgreSQL initial sync (C floor, Python, siphon, siphon + two transforms) --

say "PostgreSQL initial sync: $REPS rep(s) of pg_floor, python, siphon, siphon+identity, siphon+rewrite"
PG_REF=""
pg_contestant() { # NAME REP
  local target=$WORK/$1.db
  case "$1" in
    pg_floor) run_one pg_floor "$target" "$PG_FLOOR" "$PG_DSN" "$target" || return 0 ;;
    python) run_one python "$target" "$PYTHON" "$ROOT/tests/bench/python_baseline.py" "$PG_DSN" "$target" || return 0 ;;
    siphon_pg) siphon_usable siphon_pg && { run_one siphon_pg "$target" "$SIPHON" once "$WORK/pg.lua" || return 0; } || return 0 ;;
    siphon_pg_lua) siphon_usable siphon_pg_lua && { run_one siphon_pg_lua "$target" "$SIPHON" once "$WORK/pg_lua.lua" || return 0; } || return 0 ;;
    siphon_pg_rw) siphon_usable siphon_pg_rw && { run_one siphon_pg_rw "$target" "$SIPHON" once "$WORK/pg_rw.lua" || return 0; } || return 0 ;;
  esac
  if [[ $1 == pg_floor && -z "$PG_REF" ]]; then
    PG_REF=$(checksum "$target")
    [[ "$(rows_of "$PG_REF")" == "$PG_COUNT" ]] && CHECK[pg_floor]=ok ||
      CHECK[pg_floor]="MISMATCH: floor has $(rows_of "$PG_REF") rows, source $PG_COUNT"
  fi
  if [[ $1 == siphon_pg_rw ]]; then
    # Rewritten rows cannot match the floor's checksum: every row is there (ids summed), every
    # number rounded to an integer and every derived column set.
    local got want
    got=$(sqlite3 -readonly "$target" "SELECT count(*), sum(id), sum(instr(c_num, '.') = 0),
      count(c_kind), sum(c_text <> lower(c_text)) FROM bench" 2>&1 | tr -s '\n' ' ' | sed 's/ $//')
    want="$PG_COUNT|$(pg_sql -c "SELECT sum(id) FROM bench")|$PG_COUNT|$PG_COUNT|0"
    [[ "$got" == "$want" ]] && CHECK[$1]=${CHECK[$1]:-ok} ||
      CHECK[$1]="MISMATCH: got [$got] want [$want] (count, sum(id), rounded c_num, c_kind, upper case)"
  elif [[ $1 != pg_floor && -n "$PG_REF" ]]; then
    verify "$1" "$target" "$PG_REF" || true
  fi
  # The next pass of the full refresh over the unchanged source: it reads every row again and,
  # the key being integers, writes none.
  if [[ $1 == siphon_pg && -z "${FAIL[siphon_pg]:-}" ]] &&
    run_again siphon_pg_again "$target" "$SIPHON" once "$WORK/pg.lua" && [[ -n "$PG_REF" ]]; then
    verify siphon_pg_again "$target" "$PG_REF" || true
  fi
  rm -f "$target" "$target-wal" "$target-shm"
}
for ((rep = 1; rep <= REPS; rep++)); do
  order=(pg_floor python siphon_pg siphon_pg_lua siphon_pg_rw)
  ((rep % 2 == 0)) && order=(siphon_pg_rw siphon_pg_lua siphon_pg python pg_floor)
  # The floor's target is the reference, so it goes first when there is none yet.
  [[ -z "$PG_REF" ]] && order=(pg_floor "${order[@]/pg_floor/}")
  for c in "${order[@]}"; do [[ -n "$c" ]] && pg_contestant "$c" "$rep"; done
done

# --- scenario 2: MariaDB initial sync --------------------------------------------------------

say "MariaDB initial sync: $REPS rep(s) of mysql_floor, siphon"
MY_REF=""
my_contestant() { # NAME
  local target=$WORK/$1.db
  case "$1" in
    mysql_floor) run_one mysql_floor "$target" "$MYSQL_FLOOR" "$MYSQL_HOST" "$MYSQL_PORT" \
      "$MYSQL_USER" "$DB" "$target" || return 0 ;;
    siphon_mysql) siphon_usable siphon_mysql && { run_one siphon_mysql "$target" "$SIPHON" once "$WORK/mysql.lua" || return 0; } || return 0 ;;
  esac
  if [[ $1 == mysql_floor && -z "$MY_REF" ]]; then
    MY_REF=$(checksum "$target")
    [[ "$(rows_of "$MY_REF")" == "$MY_COUNT" ]] && CHECK[mysql_floor]=ok ||
      CHECK[mysql_floor]="MISMATCH: floor has $(rows_of "$MY_REF") rows, source $MY_COUNT"
  fi
  [[ $1 != mysql_floor && -n "$MY_REF" ]] && verify "$1" "$target" "$MY_REF" || true
  rm -f "$target" "$target-wal" "$target-shm"
}
for ((rep = 1; rep <= REPS; rep++)); do
  if ((rep % 2 == 1 || ${#MY_REF} == 0)); then
    my_contestant mysql_floor
    my_contestant siphon_mysql
  else
    my_contestant siphon_mysql
    my_contestant mysql_floor
  fi
done

# --- scenario 3: incremental run with 1% of the rows changed (PostgreSQL) -----------------

# Each rep: a cursor-driven initial sync, then 1% of the source rows get a newer c_ts (still in
# the past, so no safe horizon holds them back) and a new c_int, then the timed second run.
# Two spreads of the changed 1%: every 100th id (uniform over the table: the worst case for a
# B-tree target, each changed row dirties its own 4 KiB SQLite page, about 28% of the file) and
# the newest 1% of the ids (clustered, as changes to recent rows usually are). Every change
# gets a c_ts above all earlier ones (day 2·rep, then day 2·rep + 1), so none lands behind the
# cursor of the run that should pick it up.
# The last run as siphon timed it (its _siphon_log row), in seconds: what a run costs in
# `siphon run`, without the process's start-up, connecting, and the checkpoint at close.
run_s() { sqlite3 -readonly "$1" "SELECT printf('%.3f', duration_ms / 1000.0) FROM _siphon_log ORDER BY id DESC LIMIT 1" 2>/dev/null || true; }
incr_run() { # NAME: the timed run on the synced target, then its check against the source
  local name=$1 t0 t1 rc=0 want got
  t0=$(date +%s%N)
  BENCH_TARGET=$target timeout -k 10 "$LIMIT_SECONDS" /usr/bin/time -v -o "$WORK/$name.time" \
    "$SIPHON" once "$WORK/incr.lua" >"$WORK/$name.log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if ((rc != 0)); then
    FAIL[$name]="exit $rc"
    ERRLOG[$name]=$WORK/$name.log
    return 1
  fi
  TIMES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "
  CPU[$name]+="$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$WORK/$name.time") "
  RUNS[$name]+="$(run_s "$target") "
  want=$(pg_sql -c "SELECT count(*), sum(c_int), count(*) FILTER (WHERE c_ts >= '2025-01-01') FROM bench" | tr '|' ' ')
  got=$(sqlite3 -readonly "$target" "SELECT count(*), sum(c_int), count(*) FILTER (WHERE c_ts >= '2025-01-01') FROM bench" 2>&1 | tr '|' ' ')
  if [[ "$got" != "$want" ]]; then
    CHECK[$name]="MISMATCH: target [count sum(c_int) changed] = [$got], source [$want]"
  elif [[ -z "${CHECK[$name]:-}" ]]; then
    CHECK[$name]=ok
  fi
}
# The C floor of an incremental run: pg_floor copies only the rows changed in this rep (by
# their c_ts) and upserts them into its own copy of the synced target, so both apply the
# same rows to the same file; what it takes is what SQLite and the source need for them.
incr_floor_run() { # NAME DAY: the floor on $floor_target for the rows stamped day DAY or later
  local name=$1 t0 t1 rc=0 want got
  t0=$(date +%s%N)
  timeout -k 10 "$LIMIT_SECONDS" /usr/bin/time -v -o "$WORK/$name.time" "$PG_FLOOR" "$PG_DSN" \
    "$floor_target" "c_ts >= timestamptz '2025-01-01 00:00:00+00' + $2 * interval '1 day'" \
    >"$WORK/$name.log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if ((rc != 0)); then
    FAIL[$name]="exit $rc"
    ERRLOG[$name]=$WORK/$name.log
    return 1
  fi
  TIMES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "
  CPU[$name]+="$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$WORK/$name.time") "
  want=$(pg_sql -c "SELECT count(*), sum(c_int) FROM bench" | tr '|' ' ')
  got=$(sqlite3 -readonly "$floor_target" "SELECT count(*), sum(c_int) FROM bench" 2>&1 | tr '|' ' ')
  if [[ "$got" != "$want" ]]; then
    CHECK[$name]="MISMATCH: target [count sum(c_int)] = [$got], source [$want]"
  elif [[ -z "${CHECK[$name]:-}" ]]; then
    CHECK[$name]=ok
  fi
}
# incr_pair SIPHON_NAME FLOOR_NAME DAY: both, the first by turns, so neither always runs on
# the warmer cache.
incr_pair() {
  if ((rep % 2)); then
    incr_run "$1" || return 1
    incr_floor_run "$2" "$3" || true
  else
    incr_floor_run "$2" "$3" || true
    incr_run "$1" || return 1
  fi
}
say "incremental run: $REPS rep(s)"
for ((rep = 1; rep <= REPS; rep++)); do
  siphon_usable siphon_incr_initial && siphon_usable siphon_incr && siphon_usable siphon_incr_recent || break
  target=$WORK/incr.db
  floor_target=$WORK/incr_floor.db
  run_one siphon_incr_initial "$target" "$SIPHON" once "$WORK/incr.lua" || break
  RUNS[siphon_incr_initial]+="$(run_s "$target") "
  rm -f "$floor_target" "$floor_target-wal" "$floor_target-shm"
  cp "$target" "$floor_target"
  pg_sql -c "UPDATE bench SET c_int = c_int + 1,
    c_ts = timestamptz '2025-01-01 00:00:00+00' + $((2 * rep)) * interval '1 day' + id * interval '1 microsecond'
    WHERE id % 100 = $((rep % 100))" >/dev/null
  incr_pair siphon_incr incr_floor $((2 * rep)) || break
  pg_sql -c "UPDATE bench SET c_int = c_int + 1,
    c_ts = timestamptz '2025-01-01 00:00:00+00' + $((2 * rep + 1)) * interval '1 day' + id * interval '1 microsecond'
    WHERE id > (SELECT max(id) FROM bench) - $((ROWS / 100))" >/dev/null
  incr_pair siphon_incr_recent incr_floor_recent $((2 * rep + 1)) || break
  rm -f "$target" "$target-wal" "$target-shm" "$floor_target" "$floor_target-wal" "$floor_target-shm"
done

# --- scenario 4: idle CPU, many tables, nothing changing (PostgreSQL, then MariaDB) --------

declare -A IDLE_CPU=() IDLE_SERVER_CPU=()
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }
# The source server's processes serving siphon: PostgreSQL's backends of siphon's sessions,
# or the whole MariaDB server (one process; nothing else uses the bench's own servers).
server_pids() { # pg|mysql
  if [[ $1 == pg ]]; then
    pg_sql -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND application_name = 'siphon'"
  else
    echo "$MYSQL_PID"
  fi
}
sum_ticks() { # PID…
  local p t=0
  for p in "$@"; do t=$((t + $(cpu_ticks "$p" || echo 0))); done
  echo "$t"
}
# idle_run NAME SCRIPT pg|mysql: siphon's own CPU, and the source server's for it, over
# IDLE_SECONDS while SCRIPT's tables find nothing
idle_run() {
  local name=$1 script=$2 target=$WORK/$1.db pid a b sa sb rc synced servers
  rm -f "$target" "$target-wal" "$target-shm"
  BENCH_TARGET=$target "$SIPHON" run "$script" >"$WORK/$name.log" 2>&1 &
  pid=$!
  sleep 10 # the initial syncs of the tiny tables are not idle time
  # shellcheck disable=SC2207
  servers=($(server_pids "$3" || true))
  a=$(cpu_ticks "$pid" || true)
  sa=$(sum_ticks "${servers[@]}")
  sleep "$IDLE_SECONDS"
  b=$(cpu_ticks "$pid" || true)
  sb=$(sum_ticks "${servers[@]}")
  rc=0
  if [[ -n "$a" && -n "$b" ]] && kill -0 "$pid" 2>/dev/null; then
    IDLE_CPU[$name]=$(awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECONDS" \
      'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
    ((${#servers[@]} > 0)) && IDLE_SERVER_CPU[$name]=$(awk -v a="$sa" -v b="$sb" \
      -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    synced=$(sqlite3 -readonly "$target" "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'idle_%'" 2>/dev/null || echo 0)
    if [[ "$synced" == "$IDLE_TABLES" ]]; then CHECK[$name]=ok; else
      CHECK[$name]="MISMATCH: $synced of $IDLE_TABLES tables in the target"
    fi
    ((rc == 0)) || CHECK[$name]="${CHECK[$name]}; exit $rc after SIGTERM"
  else
    wait "$pid" || rc=$?
    FAIL[$name]="exit $rc"
    ERRLOG[$name]=$WORK/$name.log
  fi
  rm -f "$target" "$target-wal" "$target-shm"
}
if ((IDLE_SECONDS > 0)) && siphon_usable siphon_idle; then
  say "idle: $IDLE_TABLES PostgreSQL tables every 1s for ${IDLE_SECONDS}s"
  pg_sql <<EOF
DO \$\$
BEGIN
  FOR i IN 1..$IDLE_TABLES LOOP
    EXECUTE format('DROP TABLE IF EXISTS idle_%s', lpad(i::text, 3, '0'));
    EXECUTE format('CREATE TABLE idle_%s (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL)', lpad(i::text, 3, '0'));
    EXECUTE format('INSERT INTO idle_%s SELECT g, ''v'' || g, timestamptz ''2024-01-01 00:00:00+00'' + g * interval ''1 minute'' FROM generate_series(1, 10) g', lpad(i::text, 3, '0'));
    EXECUTE format('CREATE INDEX ON idle_%s (updated_at, id)', lpad(i::text, 3, '0'));
  END LOOP;
END
\$\$;
EOF
  cat >"$WORK/idle.lua" <<EOF
local pg = siphon.postgres { dsn = siphon.env("BENCH_PG_DSN") }
siphon.target { path = siphon.env("BENCH_TARGET") }
for i = 1, $IDLE_TABLES do
  local name = string.format("idle_%03d", i)
  siphon.replicate(name) { source = pg, from = "public." .. name, key = "id",
    cursor = { "updated_at", "id" }, every = "1s" }
end
EOF
  idle_run siphon_idle "$WORK/idle.lua" pg
fi
if ((IDLE_SECONDS > 0)) && siphon_usable siphon_idle_mysql; then
  say "idle: $IDLE_TABLES MariaDB tables every 1s for ${IDLE_SECONDS}s"
  for ((i = 1; i <= IDLE_TABLES; i++)); do
    t=$(printf 'idle_%03d' "$i")
    echo "DROP TABLE IF EXISTS $t;
      CREATE TABLE $t (id BIGINT PRIMARY KEY, v TEXT, updated_at DATETIME(6) NOT NULL, KEY (updated_at, id));
      INSERT INTO $t SELECT seq, CONCAT('v', seq), TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_10;"
  done | my_sql "$DB"
  cat >"$WORK/idle_mysql.lua" <<EOF
local db = siphon.mysql { host = siphon.env("BENCH_MYSQL_HOST"),
  port = tonumber(siphon.env("BENCH_MYSQL_PORT")), user = siphon.env("BENCH_MYSQL_USER"),
  password = siphon.env("BENCH_MYSQL_PASSWORD"), database = siphon.env("BENCH_MYSQL_DATABASE") }
siphon.target { path = siphon.env("BENCH_TARGET") }
for i = 1, $IDLE_TABLES do
  local name = string.format("idle_%03d", i)
  siphon.replicate(name) { source = db, from = name, key = "id",
    cursor = { "updated_at", "id" }, every = "1s" }
end
EOF
  idle_run siphon_idle_mysql "$WORK/idle_mysql.lua" mysql
fi

# --- scenario 5: peak RSS at --big-rows against --rows -----------------------------------

if ((BIG)) && siphon_usable siphon_big; then
  say "peak RSS: generating $BIG_ROWS rows"
  pg_generate bench_big "$BIG_ROWS" || die "generating bench_big failed"
  sed 's/public\.bench"/public.bench_big"/' "$WORK/pg.lua" >"$WORK/big.lua"
  LIMIT_SECONDS=$((120 + BIG_ROWS / 2000)) # the time limit scales with the big table
  run_one siphon_big "$WORK/big.db" "$SIPHON" once "$WORK/big.lua" || true
  if [[ -z "${FAIL[siphon_big]:-}" ]]; then
    n=$(sqlite3 -readonly "$WORK/big.db" "SELECT count(*) FROM bench" 2>&1)
    [[ "$n" == "$BIG_ROWS" ]] && CHECK[siphon_big]=ok || CHECK[siphon_big]="MISMATCH: $n rows, want $BIG_ROWS"
  fi
  rm -f "$WORK/big.db"*
  pg_sql -c "DROP TABLE bench_big"
fi

# --- report ------------------------------------------------------------------------------

fmt_s() { [[ -n "$1" ]] && printf '%.2f s' "$1" || printf -- '-'; }
rate() { [[ -n "$2" ]] && awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0fk rows/s", n / s / 1000 }' || printf -- '-'; }
siphon_cell() { # NAME: the median, or why there is none
  if [[ -n "${FAIL[$1]:-}" ]]; then
    case "${FAIL[$1]}" in exit*) printf 'siphon: failed (%s)' "${FAIL[$1]}" ;; *) printf 'siphon: %s' "${FAIL[$1]}" ;; esac
  else
    fmt_s "$(med "$1")"
  fi
}
# verdict NAME VALUE LIMIT: PASS when VALUE <= LIMIT and every siphon target checked out.
verdict() {
  if [[ -n "${FAIL[$1]:-}" ]]; then printf 'n/a'
  elif [[ "${CHECK[$1]:-}" == MISMATCH* ]]; then printf 'WRONG DATA'
  elif [[ -z "$2" ]]; then printf 'n/a'
  else awk -v v="$2" -v l="$3" 'BEGIN { print (v <= l ? "PASS" : "FAIL") }'
  fi
}
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || true; }
pct() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", a / b * 100 }' || true; }

row() { printf '%-40s %-24s %-32s %-8s %-14s %s\n' "$@"; }

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(lscpu 2>/dev/null | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }')
echo
echo "siphon benchmark: $ROWS rows x 7 columns, $REPS rep(s), medians of wall time"
echo "siphon: $SIPHON"
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); commit $commit; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
row "what" "baseline" "siphon" "ratio" "target" "verdict"
row "----" "--------" "------" "-----" "------" "-------"

f=$(med pg_floor) p=$(med python) s=$(med siphon_pg) sl=$(med siphon_pg_lua) sr=$(med siphon_pg_rw) m=$(med mysql_floor) sm=$(med siphon_mysql)
r=$(ratio "$s" "$f")
row "initial sync PG, vs C floor" "$(fmt_s "$f")" "$(siphon_cell siphon_pg)" "${r:+${r}x}" "<= 1.0x" "$(verdict siphon_pg "$r" 1.0)"
r=$(ratio "$s" "$p")
row "initial sync PG, vs Python" "$(fmt_s "$p")" "$(siphon_cell siphon_pg)" "${r:+${r}x}" "<= 0.33x (3x)" "$(verdict siphon_pg "$r" 0.3334)"
sa=$(med siphon_pg_again)
[[ -n "${FAIL[siphon_pg]:-}" && -z "${FAIL[siphon_pg_again]:-}" ]] && FAIL[siphon_pg_again]="needs the initial sync"
row "  PG full refresh again, unchanged" "initial $(fmt_s "$s")" "$(siphon_cell siphon_pg_again)" "$(pct "$sa" "$s")" "(info)" "-"
r=$(ratio "$sm" "$m")
row "initial sync MariaDB, vs C floor" "$(fmt_s "$m")" "$(siphon_cell siphon_mysql)" "${r:+${r}x}" "<= 1.0x" "$(verdict siphon_mysql "$r" 1.0)"
ii=$(med siphon_incr_initial) i=$(med siphon_incr)
r=$([[ -n "$i" && -n "$ii" ]] && awk -v a="$i" -v b="$ii" 'BEGIN { printf "%.4f", a / b }' || true)
[[ -n "${FAIL[siphon_incr_initial]:-}" ]] && FAIL[siphon_incr]=${FAIL[siphon_incr]:-${FAIL[siphon_incr_initial]}}
row "incremental, 1% changed, every 100th id" "initial $(fmt_s "$ii")" "$(siphon_cell siphon_incr)" \
  "$(pct "$i" "$ii")" "<= 5%" "$(verdict siphon_incr "$r" 0.05)"
ir=$(med siphon_incr_recent)
r=$([[ -n "$ir" && -n "$ii" ]] && awk -v a="$ir" -v b="$ii" 'BEGIN { printf "%.4f", a / b }' || true)
[[ -n "${FAIL[siphon_incr_initial]:-}" ]] && FAIL[siphon_incr_recent]=${FAIL[siphon_incr_recent]:-${FAIL[siphon_incr_initial]}}
row "incremental, 1% changed, newest ids" "initial $(fmt_s "$ii")" "$(siphon_cell siphon_incr_recent)" \
  "$(pct "$ir" "$ii")" "<= 5%" "$(verdict siphon_incr_recent "$r" 0.05)"
# Not targets: how each incremental run compares with the C floor applying the same rows.
fi_=$(med incr_floor) fr=$(med incr_floor_recent)
r=$(ratio "$i" "$fi_")
row "  every 100th id, vs C floor" "$(fmt_s "$fi_") ($(pct "$fi_" "$ii"))" "$(siphon_cell siphon_incr)" "${r:+${r}x}" "(info)" "-"
r=$(ratio "$ir" "$fr")
row "  newest ids, vs C floor" "$(fmt_s "$fr") ($(pct "$fr" "$ii"))" "$(siphon_cell siphon_incr_recent)" "${r:+${r}x}" "(info)" "-"
# Not targets either: the same runs as siphon times them (`siphon run` repeats the run, not
# the process around it).
rii=$(printf '%s' "${RUNS[siphon_incr_initial]:-}" | median)
ri=$(printf '%s' "${RUNS[siphon_incr]:-}" | median) rir=$(printf '%s' "${RUNS[siphon_incr_recent]:-}" | median)
row "  every 100th id, the run itself" "initial $(fmt_s "$rii")" "$(fmt_s "$ri")" "$(pct "$ri" "$rii")" "(info)" "-"
row "  newest ids, the run itself" "initial $(fmt_s "$rii")" "$(fmt_s "$rir")" "$(pct "$rir" "$rii")" "(info)" "-"
if ((BIG)); then
  r1=$(printf '%s' "${RSS[siphon_pg]:-}" | median) r10=$(printf '%s' "${RSS[siphon_big]:-}" | median)
  r=$(ratio "$r10" "$r1")
  big_cell=$([[ -n "${FAIL[siphon_big]:-}" ]] && siphon_cell siphon_big || awk -v k="$r10" 'BEGIN { printf "%.1f MB at '"$BIG_ROWS"'", k / 1024 }')
  row "peak RSS, $BIG_ROWS vs $ROWS rows" "$([[ -n "$r1" ]] && awk -v k="$r1" 'BEGIN { printf "%.1f MB (siphon)", k / 1024 }')" \
    "$big_cell" "${r:+${r}x}" "<= 1.2x" "$(verdict siphon_big "$r" 1.2)"
else
  row "peak RSS, 10M vs 1M rows" "-" "not measured (run with --big)" "" "<= 1.2x" "n/a"
fi
for c in siphon_idle siphon_idle_mysql; do
  what="idle, $IDLE_TABLES $([[ $c == siphon_idle ]] && echo PG || echo MariaDB) tables @1s"
  if ((IDLE_SECONDS > 0)); then
    row "$what, ${IDLE_SECONDS}s" "-" \
      "$([[ -n "${FAIL[$c]:-}" ]] && siphon_cell "$c" || echo "${IDLE_CPU[$c]:-}% of a core")" \
      "" "< 5%" "$(verdict "$c" "${IDLE_CPU[$c]:-}" 4.9999)"
    # Not a target: what the same runs cost the source server.
    [[ -n "${IDLE_SERVER_CPU[$c]:-}" ]] &&
      row "  the source server for it" "-" "${IDLE_SERVER_CPU[$c]}% of a core" "" "(info)" "-"
  else
    row "$what" "-" "not measured (--idle-seconds 0)" "" "< 5%" "n/a"
  fi
done
r=$(ratio "$sl" "$s")
[[ -n "${FAIL[siphon_pg]:-}" && -z "${FAIL[siphon_pg_lua]:-}" ]] && FAIL[siphon_pg_lua]="needs the no-transform run"
row "identity Lua transform (PG)" "no transform $(fmt_s "$s")" "$(siphon_cell siphon_pg_lua)" "${r:+${r}x}" "<= 1.5x" "$(verdict siphon_pg_lua "$r" 1.5)"
r=$(ratio "$sr" "$s")
[[ -n "${FAIL[siphon_pg]:-}" && -z "${FAIL[siphon_pg_rw]:-}" ]] && FAIL[siphon_pg_rw]="needs the no-transform run"
row "3-field Lua rewrite (PG)" "no transform $(fmt_s "$s")" "$(siphon_cell siphon_pg_rw)" "${r:+${r}x}" "<= 2.0x" "$(verdict siphon_pg_rw "$r" 2.0)"

# Wall time on a busy machine mostly measures the wait for a core; CPU time (user + system of
# the contestant's own process, the servers excluded) is the steadier second opinion.
cpu_med() { printf '%s' "${CPU[$1]:-}" | median; }
cpu_ratio() { # LABEL SIPHON BASELINE
  local r
  r=$(ratio "$(cpu_med "$2")" "$(cpu_med "$3")")
  [[ -n "$r" ]] && printf '  %-34s %s\n' "$1" "${r}x ($(fmt_s "$(cpu_med "$2")") vs $(fmt_s "$(cpu_med "$3")"))"
  return 0
}
echo
echo "CPU time ratios (medians of user+sys of the contestant process; servers excluded):"
cpu_ratio "initial sync PG, siphon / C floor" siphon_pg pg_floor
cpu_ratio "initial sync PG, siphon / Python" siphon_pg python
cpu_ratio "initial sync MariaDB, siphon / C" siphon_mysql mysql_floor
cpu_ratio "incremental (every 100th) / initial" siphon_incr siphon_incr_initial
cpu_ratio "incremental (newest ids) / initial" siphon_incr_recent siphon_incr_initial
cpu_ratio "incremental (every 100th), / C" siphon_incr incr_floor
cpu_ratio "incremental (newest ids), / C" siphon_incr_recent incr_floor_recent
cpu_ratio "identity transform / none" siphon_pg_lua siphon_pg
cpu_ratio "3-field rewrite / none" siphon_pg_rw siphon_pg

echo
printf '%-22s %-10s %-16s %-10s %-10s %-26s %s\n' "contestant" "median" "throughput" "cpu" "peak RSS" "runs (s)" "target check"
for c in pg_floor python siphon_pg siphon_pg_again siphon_pg_lua siphon_pg_rw mysql_floor siphon_mysql siphon_incr_initial siphon_incr incr_floor siphon_incr_recent incr_floor_recent siphon_big; do
  [[ -n "${TIMES[$c]:-}${FAIL[$c]:-}" ]] || continue
  n=$ROWS
  [[ $c == siphon_big ]] && n=$BIG_ROWS
  mm=$(med "$c")
  printf '%-22s %-10s %-16s %-10s %-10s %-26s %s\n' "$c" "$(fmt_s "$mm")" \
    "$([[ $c == *incr* && $c != *initial ]] && echo - || rate "$n" "$mm")" \
    "$(fmt_s "$(printf '%s' "${CPU[$c]:-}" | median)")" \
    "$(m=$(med_rss_mb "$c"); [[ -n "$m" ]] && echo "$m MB" || echo -)" \
    "${TIMES[$c]:--}" "${FAIL[$c]:+failed: ${FAIL[$c]}}${CHECK[$c]:-$([[ $c == siphon_incr_initial && -z "${FAIL[$c]:-}" ]] && echo "see siphon_incr")}"
done

echo
echo "verification: source rows PG $PG_COUNT, MariaDB $MY_COUNT"
echo "  PG reference checksum (pg_floor target):      ${PG_REF:-none}"
echo "  MariaDB reference checksum (mysql_floor target): ${MY_REF:-none}"
status=0
for c in "${!CHECK[@]}"; do
  if [[ "${CHECK[$c]}" == MISMATCH* ]]; then
    echo "  $c: ${CHECK[$c]}"
    status=1
  fi
done
((status == 0)) && echo "  every target that was produced matches its source (count) and the floor (checksum)"
for c in "${!ERRLOG[@]}"; do
  echo
  echo "$c failed (${FAIL[$c]}); last lines of ${ERRLOG[$c]}:"
  tail -n 5 "${ERRLOG[$c]}" | sed 's/^/  /'
done
for c in pg_floor python mysql_floor; do
  [[ -z "${FAIL[$c]:-}" ]] || status=1 # a baseline failing is a bench bug
done
exit $status
