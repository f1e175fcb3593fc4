#!/usr/bin/env bash
# siphon in one command: installs what is missing, builds, starts a throwaway PostgreSQL with
# a small shop, replicates it with examples/quickstart.lua and shows the replica.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SIPHON_BUILD_DIR:-$root/build}
work=$build/demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing what is missing"
./scripts/setup.sh

step "Building siphon"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" siphon >/dev/null
siphon=$build/siphon

step "Starting a throwaway PostgreSQL with sample data"
mkdir -p "$work"
./scripts/dev/servers.sh start "$work/servers" >/dev/null
trap './scripts/dev/servers.sh stop "$work/servers" >/dev/null 2>&1 || true' EXIT
eval "$(./scripts/dev/servers.sh env "$work/servers")"
export PGPASSWORD=$PG_PASSWORD
psql=(psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")
"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS shop" -c "CREATE DATABASE shop"
"${psql[@]}" -d shop -f examples/demo/shop.sql
export PG_DSN="host=$PG_HOST port=$PG_PORT user=$PG_USER password=$PG_PASSWORD dbname=shop"
export REPLICA=$work/shop-replica.db
rm -f "$REPLICA" "$REPLICA-wal" "$REPLICA-shm"

step "siphon check examples/quickstart.lua   (validate, reflect, print the plan)"
"$siphon" check examples/quickstart.lua

step "siphon once examples/quickstart.lua    (first sync)"
"$siphon" once examples/quickstart.lua

step "The replica ($REPLICA)"
sqlite3 -header -column "$REPLICA" \
  "SELECT id, customer, status, amount, items, tags, updated_at FROM orders ORDER BY id LIMIT 5"
sqlite3 -header -column "$REPLICA" \
  "SELECT status, count(*) AS orders, printf('%.2f', sum(amount)) AS total FROM orders GROUP BY status"
sqlite3 -header -column "$REPLICA" "SELECT sku, name, price, active FROM products ORDER BY sku LIMIT 3"

step "Changing the source: 3 orders paid, 2 new"
"${psql[@]}" -d shop -c "UPDATE orders SET status = 'paid', updated_at = clock_timestamp() WHERE id IN (3, 6, 9)" \
  -c "INSERT INTO orders (id, customer, status, amount, items) VALUES
        (50001, 'ada@example.com', 'new', 19.99, '{\"sku\": \"SKU-1\", \"qty\": 1}'),
        (50002, 'alan@example.com', 'new', 5.00, '{\"sku\": \"SKU-2\", \"qty\": 2}')" \
  -c "INSERT INTO order_events (order_id, event) VALUES (3, 'paid'), (6, 'paid'), (9, 'paid')"

step "siphon once again: only the changes are pulled, and the rows within 5 s before the orders cursor (its lookback)"
"$siphon" once examples/quickstart.lua
sqlite3 -header -column "$REPLICA" "SELECT id, status, amount FROM orders WHERE id IN (3, 6, 9, 50001, 50002)"
sqlite3 -header -column "$REPLICA" \
  "SELECT count(*) AS paid_orders, printf('%.2f', sum(amount)) AS total FROM paid_orders"

step "siphon status"
"$siphon" status "$REPLICA"
# The trap stops the throwaway PostgreSQL as this script exits: say what is left to try.
printf '\nDone. The throwaway PostgreSQL stops now; the replica stays: sqlite3 %s\n' "$REPLICA"
printf 'On a PostgreSQL of your own: psql -d shop -f examples/demo/shop.sql, then\n'
printf '  PG_DSN=postgresql://USER@HOST/shop %s run examples/quickstart.lua\n' "$siphon"
