/* The part both C floors share: the bench table's columns, the SQLite target with one prepared
 * upsert, transactions of kPageRows rows, and the timing. Kept deliberately plain: the floor is
 * what a careful engineer writes by hand in an afternoon, the bar siphon has to beat. */
#pragma once

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kPageRows = 5000, kColumns = 7 };

typedef enum { kInt, kText, kTimestamp } ColumnKind;

typedef struct {
  const char* name;
  ColumnKind kind;
} Column;

/* The generated bench table (scripts/bench.sh); id is the key. */
static const Column kBenchColumns[kColumns] = {
    {"id", kInt},      {"c_int", kInt},   {"c_text", kText},    {"c_num", kText},
    {"c_null", kText}, {"c_json", kText}, {"c_ts", kTimestamp},
};

static const char kSelectList[] = "id, c_int, c_text, c_num, c_null, c_json, c_ts";

typedef struct {
  sqlite3* db;
  sqlite3_stmt* upsert;
  long rows;
  long in_txn;
} Target;

static void Die(const char* what, const char* detail) {
  fprintf(stderr, "floor: %s: %s\n", what, detail ? detail : "");
  exit(1);
}

static double NowSeconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void Exec(sqlite3* db, const char* sql) {
  char* err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) Die(sql, err);
}

static void TargetOpen(Target* t, const char* path) {
  memset(t, 0, sizeof *t);
  if (sqlite3_open(path, &t->db) != SQLITE_OK) Die("sqlite3_open", sqlite3_errmsg(t->db));
  Exec(t->db, "PRAGMA journal_mode=WAL");
  Exec(t->db, "PRAGMA synchronous=NORMAL");
  Exec(t->db,
       "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, c_int INTEGER, c_text TEXT, "
       "c_num TEXT, c_null TEXT, c_json TEXT, c_ts TEXT)");
  const char* sql =
      "INSERT INTO bench (id, c_int, c_text, c_num, c_null, c_json, c_ts) "
      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET c_int = excluded.c_int, "
      "c_text = excluded.c_text, c_num = excluded.c_num, c_null = excluded.c_null, "
      "c_json = excluded.c_json, c_ts = excluded.c_ts";
  if (sqlite3_prepare_v3(t->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->upsert, NULL) != SQLITE_OK)
    Die("prepare upsert", sqlite3_errmsg(t->db));
}

/* Binds one value already converted to the target's text form (or an integer column given as
 * decimal text). The text must stay valid until TargetRowDone. */
static void TargetBind(Target* t, int column, const char* value, size_t len) {
  int rc;
  if (value == NULL) {
    rc = sqlite3_bind_null(t->upsert, column + 1);
  } else if (kBenchColumns[column].kind == kInt) {
    char* end = NULL;
    long long v = strtoll(value, &end, 10);
    if (end != value + len) Die("not an integer", value);
    rc = sqlite3_bind_int64(t->upsert, column + 1, v);
  } else {
    rc = sqlite3_bind_text(t->upsert, column + 1, value, (int)len, SQLITE_STATIC);
  }
  if (rc != SQLITE_OK) Die("bind", sqlite3_errmsg(t->db));
}

static void TargetRowDone(Target* t) {
  if (t->in_txn == 0) Exec(t->db, "BEGIN");
  if (sqlite3_step(t->upsert) != SQLITE_DONE) Die("upsert", sqlite3_errmsg(t->db));
  sqlite3_reset(t->upsert);
  t->rows++;
  if (++t->in_txn == kPageRows) {
    Exec(t->db, "COMMIT");
    t->in_txn = 0;
  }
}

static void TargetClose(Target* t) {
  if (t->in_txn > 0) Exec(t->db, "COMMIT");
  sqlite3_finalize(t->upsert);
  sqlite3_close(t->db);
}
