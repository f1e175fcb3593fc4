#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and MariaDB servers for siphon's tests, demos and benchmarks.
#
#   servers.sh start DIR        start both (a no-op when both already run), write DIR/env
#   servers.sh stop DIR         stop both; data and logs stay, only the pid state goes
#   servers.sh env DIR          print DIR/env as `export KEY=VALUE` lines (for eval)
#   servers.sh status DIR       exit 0 when both servers run
#   servers.sh start-pg DIR | stop-pg DIR | restart-pg DIR        fault tests: same port,
#   servers.sh start-mysql DIR | stop-mysql DIR | restart-mysql DIR   same data
#
# With SIPHON_SERVERS_TLS=CERTDIR (a folder holding server.crt and server.key, PEM), both
# servers also offer TLS with that certificate; plain connections stay allowed. The files are
# copied next to each server's data at each start (PostgreSQL wants its key owned by itself,
# mode 0600). When CERTDIR also holds ca.crt, the servers trust client certificates it signed,
# and the user/role `siphon_cert` (no password) logs in only with one (CN=siphon_cert).
#
# Both listen on 127.0.0.1 only, on free ports picked at the first start, with sockets
# and data under DIR. The role/user `siphon` (password `siphon-test-pw`) may do anything,
# because tests create and drop their own databases. Durability is off (fsync=off,
# innodb_flush_log_at_trx_commit=2): the data is disposable and tests should be fast.
#
# PostgreSQL refuses to run as root, so when we are root it runs as `postgres`; if that
# user cannot reach DIR (say DIR is under /root), its files go to a directory in /tmp
# named after DIR instead, linked from DIR/pg.
set -euo pipefail

# Client settings from the caller's environment (say, an eval'd env file) must not redirect
# the setup connections below.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE PGOPTIONS \
  MYSQL_HOST MYSQL_TCP_PORT MYSQL_UNIX_PORT MYSQL_PWD MYSQL_HISTFILE

readonly kUser=siphon
readonly kPassword=siphon-test-pw
readonly kWaitSeconds=60

die() {
  printf 'servers.sh: error: %s\n' "$*" >&2
  exit 1
}
log() { printf 'servers.sh: %s\n' "$*" >&2; }

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

(($# == 2)) || usage
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)

# --- locating binaries -------------------------------------------------------------------

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
[[ -x "$PG_BIN/pg_ctl" ]] || die "PostgreSQL 15 not found in $PG_BIN (run scripts/setup.sh)"
MYSQLD=$(command -v mariadbd || command -v mysqld || true)
[[ -z "$MYSQLD" && -x /usr/sbin/mariadbd ]] && MYSQLD=/usr/sbin/mariadbd
[[ -n "$MYSQLD" ]] || die "mariadbd not found (run scripts/setup.sh)"
MYSQL_CLIENT=$(command -v mariadb || command -v mysql || true)
MYSQLADMIN=$(command -v mariadb-admin || command -v mysqladmin || true)
MYSQL_INSTALL_DB=$(command -v mariadb-install-db || command -v mysql_install_db || true)
[[ -n "$MYSQL_CLIENT" && -n "$MYSQLADMIN" && -n "$MYSQL_INSTALL_DB" ]] ||
  die "MariaDB client tools not found (run scripts/setup.sh)"

# --- layout ------------------------------------------------------------------------------

pg_owner=""
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (apt-get install postgresql)"
  pg_owner=postgres
fi

as_pg() {
  if [[ -n "$pg_owner" ]]; then
    runuser -u "$pg_owner" -- "$@"
  else
    "$@"
  fi
}

# Unix socket paths are limited to 107 bytes; "/.s.PGSQL.NNNNN" and "/mysql.sock" need room.
pg_root_for() {
  local dir=$1 fallback
  fallback="/tmp/siphon-servers-$(printf '%s' "$dir" | cksum | cut -d' ' -f1)"
  if [[ -L "$dir/pg" ]]; then
    readlink "$dir/pg"
  elif [[ -d "$dir/pg" ]]; then
    echo "$dir/pg"
  elif ((${#dir} > 80)); then
    echo "$fallback/pg"
  elif [[ -n "$pg_owner" ]] && ! runuser -u "$pg_owner" -- test -x "$dir"; then
    echo "$fallback/pg"
  else
    echo "$dir/pg"
  fi
}

PG_ROOT=$(pg_root_for "$DIR")
PG_DATA=$PG_ROOT/data
PG_SOCKET_DIR=$PG_ROOT
# postgres writes its own log, so it goes where postgres can reach.
if [[ "$PG_ROOT" == "$DIR/pg" ]]; then
  PG_LOG=$DIR/logs/postgresql.log
else
  PG_LOG=$(dirname "$PG_ROOT")/postgresql.log
fi
MY_ROOT=$DIR/mysql
if ((${#DIR} > 80)); then
  MY_SOCKET="/tmp/siphon-servers-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)/mysql.sock"
else
  MY_SOCKET=$MY_ROOT/mysql.sock
fi
MY_DATA=$MY_ROOT/data
MY_LOG=$DIR/logs/mariadb.log
MY_PIDFILE=$MY_ROOT/mariadbd.pid

mkdir -p "$DIR/logs" "$DIR/state"

# --- one command at a time per DIR -------------------------------------------------------
# The servers we launch must not inherit this descriptor (9>&- below), or the lock
# would live as long as they do.
exec 9>"$DIR/state/lock"
flock -w 180 9 || die "another servers.sh holds $DIR/state/lock for more than 180s"

# --- ports -------------------------------------------------------------------------------

port_free() {
  # A bind test, not a connect test: a port can be unbindable with nothing accepting on it.
  local port=$1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$port" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
  else
    # Without python, fall back to "nothing accepts connections there".
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 1
    fi
  fi
}

pick_port() {
  # Below the usual ephemeral range (32768+), so outgoing connections do not take it
  # between our check and the server's bind; random so parallel DIRs rarely collide.
  local avoid=${1:-0} port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12000))
    ((port == avoid)) && continue
    if port_free "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# The port is picked once and kept in DIR/state so restarts (fault tests) reuse it.
state_port() {
  local name=$1 file=$DIR/state/$1.port other=${2:-0} port
  if [[ -s "$file" ]]; then
    cat "$file"
    return 0
  fi
  port=$(pick_port "$other")
  echo "$port" >"$file"
  echo "$port"
}

# --- process checks ----------------------------------------------------------------------

alive() {
  # A live process with the expected name: a recycled pid must not pass for our server.
  local pid=$1 name=$2 comm
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  [[ -z "$comm" || "$comm" == "$name"* ]]
}

pg_pid() {
  [[ -f "$PG_DATA/postmaster.pid" ]] || return 0
  local pid
  pid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  alive "$pid" postgres && echo "$pid"
  return 0
}

my_pid() {
  [[ -f "$MY_PIDFILE" ]] || return 0
  local pid
  pid=$(cat "$MY_PIDFILE" 2>/dev/null || true)
  alive "$pid" mariadbd || alive "$pid" mysqld && echo "$pid"
  return 0
}

tail_log() {
  local file=$1
  printf -- '----- last lines of %s -----\n' "$file" >&2
  tail -n 40 "$file" >&2 2>/dev/null || true
  printf -- '-----\n' >&2
}

# --- PostgreSQL --------------------------------------------------------------------------

pg_psql() {
  # Superuser access through the socket (trust), for setup only.
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$1" -U postgres -d postgres "${@:2}"
}

pg_init() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  log "initializing PostgreSQL in $PG_DATA"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_ROOT"
  [[ "$PG_ROOT" == "$DIR/pg" ]] || ln -sfn "$PG_ROOT" "$DIR/pg"
  if [[ -n "$pg_owner" ]]; then
    chown "$pg_owner:" "$PG_ROOT"
    chmod 0700 "$PG_ROOT"
  fi
  local pwfile=$PG_ROOT/.pw
  echo "$kPassword" >"$pwfile"
  [[ -n "$pg_owner" ]] && chown "$pg_owner:" "$pwfile"
  if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$DIR/logs/initdb.log" 2>&1; then
    rm -f "$pwfile"
    tail_log "$DIR/logs/initdb.log"
    die "initdb failed"
  fi
  rm -f "$pwfile"
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# siphon test server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

pg_start() {
  local pid port
  pid=$(pg_pid)
  if [[ -n "$pid" ]]; then
    return 0
  fi
  pg_init
  tls_copy
  touch "$PG_LOG"
  [[ -n "$pg_owner" ]] && chown "$pg_owner:" "$PG_LOG"
  rm -f "$PG_DATA/postmaster.pid" # stale after a crash or a kill -9
  for _ in 1 2 3; do
    port=$(state_port pg "$(cat "$DIR/state/mysql.port" 2>/dev/null || echo 0)")
    if [[ $cmd == start ]] && ! port_free "$port"; then
      # A full start may move; a restart in a fault test must keep its port.
      rm -f "$DIR/state/pg.port"
      continue
    fi
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$kWaitSeconds" \
      -o "-p $port $(pg_tls_options)" start >/dev/null 2>&1 9>&-; then
      break
    fi
    if [[ $cmd == start ]] && grep -q 'Address already in use' "$PG_LOG"; then
      rm -f "$DIR/state/pg.port"
      continue
    fi
    tail_log "$PG_LOG"
    die "PostgreSQL did not start on port $port (log: $PG_LOG)"
  done
  pid=$(pg_pid)
  [[ -n "$pid" ]] || {
    tail_log "$PG_LOG"
    die "PostgreSQL did not start"
  }
  port=$(cat "$DIR/state/pg.port")
  pg_psql "$port" <<EOF || die "could not create the $kUser role"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$kUser') THEN
    CREATE ROLE $kUser LOGIN SUPERUSER PASSWORD '$kPassword';
  END IF;
END
\$\$;
EOF
  if tls_clients; then
    pg_psql "$port" <<EOF || die "could not create the siphon_cert role"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'siphon_cert') THEN
    CREATE ROLE siphon_cert LOGIN SUPERUSER;
  END IF;
END
\$\$;
EOF
  fi
  pg_wait_tcp "$port"
}

# Copies the certificate of SIPHON_SERVERS_TLS where each server reads it; prints nothing.
tls_copy() {
  [[ -n "${SIPHON_SERVERS_TLS:-}" ]] || return 0
  local f
  for f in server.crt server.key; do
    [[ -r "$SIPHON_SERVERS_TLS/$f" ]] || die "SIPHON_SERVERS_TLS: $SIPHON_SERVERS_TLS/$f is missing"
  done
  if [[ -d "$PG_DATA" ]]; then
    install -m 0600 ${pg_owner:+-o "$pg_owner"} "$SIPHON_SERVERS_TLS/server.crt" "$PG_ROOT/server.crt"
    install -m 0600 ${pg_owner:+-o "$pg_owner"} "$SIPHON_SERVERS_TLS/server.key" "$PG_ROOT/server.key"
  fi
  mkdir -p "$MY_ROOT"
  install -m 0600 "$SIPHON_SERVERS_TLS/server.crt" "$MY_ROOT/server.crt"
  install -m 0600 "$SIPHON_SERVERS_TLS/server.key" "$MY_ROOT/server.key"
  tls_clients || return 0
  install -m 0600 "$SIPHON_SERVERS_TLS/ca.crt" "$MY_ROOT/ca.crt"
  [[ -d "$PG_DATA" ]] || return 0
  install -m 0600 ${pg_owner:+-o "$pg_owner"} "$SIPHON_SERVERS_TLS/ca.crt" "$PG_ROOT/ca.crt"
  # The first matching line wins: siphon_cert over TCP needs TLS and a client certificate.
  local hba=$PG_DATA/pg_hba.conf line='hostssl all siphon_cert 127.0.0.1/32 cert'
  if ! grep -qxF "$line" "$hba"; then
    { echo "$line"; cat "$hba"; } >"$hba.new"
    [[ -z "$pg_owner" ]] || chown "$pg_owner:" "$hba.new"
    mv -f "$hba.new" "$hba"
  fi
}

# True when SIPHON_SERVERS_TLS names a CA for client certificates.
tls_clients() { [[ -n "${SIPHON_SERVERS_TLS:-}" && -r "$SIPHON_SERVERS_TLS/ca.crt" ]]; }

pg_tls_options() {
  [[ -n "${SIPHON_SERVERS_TLS:-}" ]] || return 0
  printf -- '-c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s' "$PG_ROOT/server.crt" \
    "$PG_ROOT/server.key"
  if tls_clients; then printf -- ' -c ssl_ca_file=%s' "$PG_ROOT/ca.crt"; fi
}

my_tls_options() {
  [[ -n "${SIPHON_SERVERS_TLS:-}" ]] || return 0
  printf -- '--ssl-cert=%s\n--ssl-key=%s\n' "$MY_ROOT/server.crt" "$MY_ROOT/server.key"
  if tls_clients; then printf -- '--ssl-ca=%s\n' "$MY_ROOT/ca.crt"; fi
}

pg_wait_tcp() {
  # What the tests do: TCP + scram as siphon.
  local port=$1 deadline=$((SECONDS + kWaitSeconds))
  until PGPASSWORD=$kPassword PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" \
    -U "$kUser" -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      tail_log "$PG_LOG"
      die "PostgreSQL does not accept $kUser over TCP on 127.0.0.1:$port"
    fi
    sleep 0.2
  done
}

pg_stop() {
  local pid
  pid=$(pg_pid)
  if [[ -n "$pid" ]]; then
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$kWaitSeconds" stop >/dev/null 2>&1; then
      log "pg_ctl stop failed; killing PostgreSQL (pid $pid)"
      # pg_ctl made the postmaster a session leader: take its backends down with it, or
      # their shared memory would stop the next start.
      kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PG_DATA/postmaster.pid"
}

# --- MariaDB -----------------------------------------------------------------------------

my_root_sql() {
  # Root through the socket, for setup only.
  "$MYSQL_CLIENT" --no-defaults --protocol=socket -S "$MY_SOCKET" -uroot
}

my_init() {
  [[ -d "$MY_DATA/mysql" ]] && return 0
  log "initializing MariaDB in $MY_DATA"
  rm -rf "$MY_DATA"
  mkdir -p "$MY_DATA" "$(dirname "$MY_SOCKET")"
  local user_opt=()
  ((EUID == 0)) && user_opt=(--user=root)
  if ! "$MYSQL_INSTALL_DB" --no-defaults "${user_opt[@]}" --datadir="$MY_DATA" \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
    >"$DIR/logs/mariadb-install-db.log" 2>&1; then
    tail_log "$DIR/logs/mariadb-install-db.log"
    rm -rf "$MY_DATA"
    die "mariadb-install-db failed"
  fi
}

my_start() {
  local pid port
  pid=$(my_pid)
  if [[ -n "$pid" ]]; then
    return 0
  fi
  my_init
  tls_copy
  local tls_opt=()
  mapfile -t tls_opt < <(my_tls_options)
  mkdir -p "$(dirname "$MY_SOCKET")"
  rm -f "$MY_PIDFILE" "$MY_SOCKET"
  local user_opt=() started=0
  ((EUID == 0)) && user_opt=(--user=root)
  for _ in 1 2 3; do
    port=$(state_port mysql "$(cat "$DIR/state/pg.port" 2>/dev/null || echo 0)")
    if [[ $cmd == start ]] && ! port_free "$port"; then
      rm -f "$DIR/state/mysql.port"
      continue
    fi
    local log_start
    touch "$MY_LOG"
    log_start=$(wc -c <"$MY_LOG")
    # setsid + closed descriptors: the server must outlive us and not hold ctest's pipes.
    # The server's system time zone is 3 hours east of UTC (no DST; a POSIX TZ string needs no
    # tzdata): InnoDB reports transaction start times in it, and the tests must catch code
    # that takes them for UTC.
    TZ='<+03>-3' setsid "$MYSQLD" --no-defaults "${user_opt[@]}" --datadir="$MY_DATA" \
      --bind-address=127.0.0.1 --port="$port" --socket="$MY_SOCKET" \
      --pid-file="$MY_PIDFILE" --log-error="$MY_LOG" --skip-log-bin --skip-name-resolve \
      --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=128M \
      --max-connections=300 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
      "${tls_opt[@]}" </dev/null >/dev/null 2>&1 9>&- &
    local launched=$!
    local deadline=$((SECONDS + kWaitSeconds))
    while ! "$MYSQLADMIN" --no-defaults --protocol=socket -S "$MY_SOCKET" -uroot \
      --connect-timeout=2 ping >/dev/null 2>&1; do
      if ! kill -0 "$launched" 2>/dev/null; then
        break
      fi
      if ((SECONDS > deadline)); then
        kill -9 "$launched" 2>/dev/null || true
        tail_log "$MY_LOG"
        die "MariaDB did not accept connections within ${kWaitSeconds}s on port $port"
      fi
      sleep 0.2
    done
    if kill -0 "$launched" 2>/dev/null; then
      started=1
      break
    fi
    if [[ $cmd == start ]] && tail -c +"$((log_start + 1))" "$MY_LOG" | grep -q 'Address already in use'; then
      rm -f "$DIR/state/mysql.port"
      continue
    fi
    tail_log "$MY_LOG"
    die "MariaDB exited during startup (port $port)"
  done
  ((started)) || die "MariaDB could not get a free port"
  port=$(cat "$DIR/state/mysql.port")
  my_root_sql <<EOF || die "could not create the $kUser user"
CREATE USER IF NOT EXISTS '$kUser'@'127.0.0.1' IDENTIFIED BY '$kPassword';
CREATE USER IF NOT EXISTS '$kUser'@'localhost' IDENTIFIED BY '$kPassword';
GRANT ALL PRIVILEGES ON *.* TO '$kUser'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$kUser'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOF
  if tls_clients; then
    my_root_sql <<EOF || die "could not create the siphon_cert user"
CREATE USER IF NOT EXISTS 'siphon_cert'@'127.0.0.1' REQUIRE X509;
GRANT ALL PRIVILEGES ON *.* TO 'siphon_cert'@'127.0.0.1';
EOF
  fi
  local deadline=$((SECONDS + kWaitSeconds))
  until "$MYSQL_CLIENT" --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u"$kUser" \
    -p"$kPassword" --connect-timeout=5 -e 'SELECT 1' >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      tail_log "$MY_LOG"
      die "MariaDB does not accept $kUser over TCP on 127.0.0.1:$port"
    fi
    sleep 0.2
  done
}

my_stop() {
  local pid i
  pid=$(my_pid)
  if [[ -n "$pid" ]]; then
    "$MYSQLADMIN" --no-defaults --protocol=socket -S "$MY_SOCKET" -uroot --connect-timeout=5 \
      shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < kWaitSeconds * 5; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "MariaDB (pid $pid) did not stop; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$MY_PIDFILE"
}

# --- env file ----------------------------------------------------------------------------

write_env() {
  local tmp=$DIR/env.tmp
  cat >"$tmp" <<EOF
SERVERS_DIR=$DIR
PG_HOST=127.0.0.1
PG_PORT=$(cat "$DIR/state/pg.port" 2>/dev/null || true)
PG_USER=$kUser
PG_PASSWORD=$kPassword
PG_DATABASE=postgres
PG_BIN=$PG_BIN
PG_DATA=$PG_DATA
PG_SOCKET_DIR=$PG_SOCKET_DIR
PG_LOG=$PG_LOG
PG_PID=$(pg_pid)
MYSQL_HOST=127.0.0.1
MYSQL_PORT=$(cat "$DIR/state/mysql.port" 2>/dev/null || true)
MYSQL_USER=$kUser
MYSQL_PASSWORD=$kPassword
MYSQL_SOCKET=$MY_SOCKET
MYSQL_DATA=$MY_DATA
MYSQL_LOG=$MY_LOG
MYSQL_PID=$(my_pid)
EOF
  mv -f "$tmp" "$DIR/env"
}

case "$cmd" in
  start)
    pg_start
    my_start
    write_env
    log "PostgreSQL on 127.0.0.1:$(cat "$DIR/state/pg.port"), MariaDB on 127.0.0.1:$(cat "$DIR/state/mysql.port") (env: $DIR/env)"
    ;;
  stop)
    pg_stop
    my_stop
    write_env
    ;;
  status)
    write_env
    [[ -n "$(pg_pid)" && -n "$(my_pid)" ]]
    ;;
  env)
    [[ -f "$DIR/env" ]] || die "no $DIR/env: run 'servers.sh start $DIR' first"
    sed 's/^/export /' "$DIR/env"
    ;;
  start-pg)
    [[ -s "$DIR/state/pg.port" ]] || die "start-pg needs an earlier 'start' (it reuses that port)"
    pg_start
    write_env
    ;;
  stop-pg)
    pg_stop
    write_env
    ;;
  restart-pg)
    [[ -s "$DIR/state/pg.port" ]] || die "restart-pg needs an earlier 'start' (it reuses that port)"
    pg_stop
    pg_start
    write_env
    ;;
  start-mysql)
    [[ -s "$DIR/state/mysql.port" ]] || die "start-mysql needs an earlier 'start' (it reuses that port)"
    my_start
    write_env
    ;;
  stop-mysql)
    my_stop
    write_env
    ;;
  restart-mysql)
    [[ -s "$DIR/state/mysql.port" ]] || die "restart-mysql needs an earlier 'start' (it reuses that port)"
    my_stop
    my_start
    write_env
    ;;
  *) usage ;;
esac
