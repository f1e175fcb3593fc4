#!/usr/bin/env python3
"""The Python baseline for scripts/bench.sh: the sync job as people write it by hand.

psycopg2 + sqlite3, keyset pages of 5000 rows (WHERE id > %s ORDER BY id LIMIT 5000),
executemany of one upsert per page, one SQLite transaction per page, values converted the way
siphon stores them (numeric and jsonb as text, timestamptz as ISO-8601 UTC with T and Z).

    python_baseline.py CONNINFO TARGET.db

Prints "rows=N seconds=S rows_per_s=R".
"""
import sqlite3
import sys
import time

import psycopg2
import psycopg2.extensions
import psycopg2.extras

PAGE = 5000
COLUMNS = "id, c_int, c_text, c_num, c_null, c_json, c_ts"
UPSERT = (
    "INSERT INTO bench (id, c_int, c_text, c_num, c_null, c_json, c_ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET c_int = excluded.c_int, "
    "c_text = excluded.c_text, c_num = excluded.c_num, c_null = excluded.c_null, "
    "c_json = excluded.c_json, c_ts = excluded.c_ts"
)


def iso_utc(ts):
    # The session runs in UTC, so the offset is always +00:00.
    return ts.isoformat().replace("+00:00", "Z")


def main():
    if len(sys.argv) != 3:
        print("usage: python_baseline.py CONNINFO TARGET.db", file=sys.stderr)
        return 2
    started = time.monotonic()
    src = psycopg2.connect(sys.argv[1])
    src.set_session(readonly=True, autocommit=True)
    # jsonb is copied as the text the server sends, not parsed into dicts and dumped again.
    psycopg2.extras.register_default_jsonb(conn_or_curs=src, loads=lambda s: s)
    cur = src.cursor()
    cur.execute("SET TimeZone = 'UTC'")

    dst = sqlite3.connect(sys.argv[2], isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=NORMAL")
    dst.execute(
        "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, c_int INTEGER, c_text TEXT, "
        "c_num TEXT, c_null TEXT, c_json TEXT, c_ts TEXT)"
    )

    rows = 0
    last = None
    while True:
        if last is None:
            cur.execute(f"SELECT {COLUMNS} FROM bench ORDER BY id LIMIT %s", (PAGE,))
        else:
            cur.execute(
                f"SELECT {COLUMNS} FROM bench WHERE id > %s ORDER BY id LIMIT %s", (last, PAGE)
            )
        page = cur.fetchall()
        if not page:
            break
        converted = [
            (
                r[0],
                r[1],
                r[2],
                None if r[3] is None else str(r[3]),
                r[4],
                r[5],
                None if r[6] is None else iso_utc(r[6]),
            )
            for r in page
        ]
        dst.execute("BEGIN")
        dst.executemany(UPSERT, converted)
        dst.execute("COMMIT")
        rows += len(page)
        last = page[-1][0]

    dst.close()
    src.close()
    seconds = time.monotonic() - started
    print(f"rows={rows} seconds={seconds:.3f} rows_per_s={rows / seconds if seconds else 0:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
