/* The MariaDB floor for scripts/bench.sh: a single-threaded C loop that streams the bench
 * table with mysql_use_result and writes it into SQLite with one prepared upsert, one
 * transaction per 5000 rows, converting values the way siphon does (integers as INTEGER,
 * DECIMAL and JSON as the server prints them, TIMESTAMP as ISO-8601 UTC text with T and Z).
 *
 *   MYSQL_PWD=secret mysql_floor HOST PORT USER DATABASE TARGET.db
 *
 * Prints "rows=N seconds=S rows_per_s=R". */
#include <mysql.h>

#include "floor_common.h"

static void Query(MYSQL* db, const char* sql) {
  if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0) Die(sql, mysql_error(db));
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: MYSQL_PWD=... mysql_floor HOST PORT USER DATABASE TARGET.db\n");
    return 2;
  }
  double started = NowSeconds();
  MYSQL* db = mysql_init(NULL);
  if (db == NULL) Die("mysql_init", "out of memory");
  if (mysql_real_connect(db, argv[1], argv[3], getenv("MYSQL_PWD"), argv[4],
                         (unsigned)atoi(argv[2]), NULL, 0) == NULL)
    Die("connect", mysql_error(db));
  /* TIMESTAMP values come out in the session time zone: ask for UTC. */
  Query(db, "SET time_zone = '+00:00'");

  Target target;
  TargetOpen(&target, argv[5]);

  char sql[256];
  snprintf(sql, sizeof sql, "SELECT %s FROM bench ORDER BY id", kSelectList);
  Query(db, sql);
  MYSQL_RES* res = mysql_use_result(db);
  if (res == NULL) Die("mysql_use_result", mysql_error(db));
  if (mysql_num_fields(res) != kColumns) Die("unexpected column count", sql);

  char ts[64];
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    for (int col = 0; col < kColumns; col++) {
      const char* value = row[col];
      size_t len = lengths[col];
      if (value != NULL && kBenchColumns[col].kind == kTimestamp && len + 2 < sizeof ts) {
        /* "2024-01-01 10:00:00.123000" -> "2024-01-01T10:00:00.123000Z" */
        memcpy(ts, value, len);
        if (len > 10 && ts[10] == ' ') ts[10] = 'T';
        ts[len++] = 'Z';
        ts[len] = '\0';
        value = ts;
      }
      TargetBind(&target, col, value, len);
    }
    TargetRowDone(&target);
  }
  if (mysql_errno(db) != 0) Die("mysql_fetch_row", mysql_error(db));
  mysql_free_result(res);

  TargetClose(&target);
  mysql_close(db);
  double seconds = NowSeconds() - started;
  printf("rows=%ld seconds=%.3f rows_per_s=%.0f\n", target.rows, seconds,
         seconds > 0 ? (double)target.rows / seconds : 0.0);
  return 0;
}
