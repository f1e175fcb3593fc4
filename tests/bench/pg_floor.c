/* The PostgreSQL floor for scripts/bench.sh: a single-threaded C loop that COPYs the bench
 * table out in text format and writes it into SQLite with one prepared upsert, one transaction
 * per 5000 rows, converting values the way siphon does (integers as INTEGER, numeric and jsonb
 * as the source prints them, timestamptz as ISO-8601 UTC text with T and Z).
 *
 *   pg_floor CONNINFO TARGET.db [CONDITION]
 *
 * With CONDITION (an SQL condition on the bench table, such as "c_ts >= '2025-01-03'") only
 * the rows it selects are copied, in (c_ts, id) order, and upserted into the target as it
 * is: the floor of an incremental run, given a target already synced.
 *
 * Prints "rows=N seconds=S rows_per_s=R". */
#include <libpq-fe.h>

#include "floor_common.h"

/* Decodes one COPY text field in place (escapes are never shorter than what they stand for)
 * and NUL-terminates it. Returns the decoded length. */
static size_t Unescape(char* s, size_t len) {
  char* out = s;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c != '\\' || i + 1 == len) {
      *out++ = c;
      continue;
    }
    char e = s[++i];
    switch (e) {
      case 'b':
        *out++ = '\b';
        break;
      case 'f':
        *out++ = '\f';
        break;
      case 'n':
        *out++ = '\n';
        break;
      case 'r':
        *out++ = '\r';
        break;
      case 't':
        *out++ = '\t';
        break;
      case 'v':
        *out++ = '\v';
        break;
      case 'x': {
        int v = 0, n = 0;
        while (n < 2 && i + 1 < len && strchr("0123456789abcdefABCDEF", s[i + 1]) && s[i + 1]) {
          char h = s[++i];
          v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          n++;
        }
        *out++ = n ? (char)v : 'x';
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0', n = 1;
          while (n < 3 && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '7') {
            v = v * 8 + (s[++i] - '0');
            n++;
          }
          *out++ = (char)v;
        } else {
          *out++ = e; /* \\ and any other escaped character stand for themselves */
        }
    }
  }
  *out = '\0';
  return (size_t)(out - s);
}

/* "2024-01-01 10:00:00.123+00" (TimeZone=UTC) -> "2024-01-01T10:00:00.123Z", in place. */
static size_t TimestampToIso(char* s, size_t len) {
  if (len > 10 && s[10] == ' ') s[10] = 'T';
  if (len > 3 && s[len - 3] == '+' && s[len - 2] == '0' && s[len - 1] == '0') {
    s[len - 3] = 'Z';
    s[len - 2] = '\0';
    return len - 2;
  }
  return len;
}

static void ParseLine(Target* t, char* line, size_t len) {
  if (len > 0 && line[len - 1] == '\n') len--;
  size_t start = 0;
  for (int col = 0; col < kColumns; col++) {
    size_t end = start;
    while (end < len && line[end] != '\t') end++;
    if (col < kColumns - 1 && end == len) Die("short COPY line", line);
    char* field = line + start;
    size_t flen = end - start;
    if (flen == 2 && field[0] == '\\' && field[1] == 'N') {
      TargetBind(t, col, NULL, 0);
    } else {
      flen = Unescape(field, flen);
      if (kBenchColumns[col].kind == kTimestamp) flen = TimestampToIso(field, flen);
      TargetBind(t, col, field, flen);
    }
    start = end + 1;
  }
  TargetRowDone(t);
}

static void Run(PGconn* conn, const char* sql) {
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) Die(sql, PQerrorMessage(conn));
  PQclear(res);
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: pg_floor CONNINFO TARGET.db [CONDITION]\n");
    return 2;
  }
  double started = NowSeconds();
  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) Die("connect", PQerrorMessage(conn));
  Run(conn, "SET TimeZone = 'UTC'");
  Run(conn, "SET DateStyle = 'ISO'");

  Target target;
  TargetOpen(&target, argv[2]);

  char sql[1024];
  if (argc == 4) {
    snprintf(sql, sizeof sql, "COPY (SELECT %s FROM bench WHERE %s ORDER BY c_ts, id) TO STDOUT",
             kSelectList, argv[3]);
  } else {
    snprintf(sql, sizeof sql, "COPY (SELECT %s FROM bench ORDER BY id) TO STDOUT", kSelectList);
  }
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_COPY_OUT) Die("COPY", PQerrorMessage(conn));
  PQclear(res);

  char* line = NULL;
  int n;
  while ((n = PQgetCopyData(conn, &line, 0)) > 0) {
    ParseLine(&target, line, (size_t)n);
    PQfreemem(line);
  }
  if (n == -2) Die("PQgetCopyData", PQerrorMessage(conn));
  res = PQgetResult(conn);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) Die("COPY end", PQerrorMessage(conn));
  PQclear(res);

  TargetClose(&target);
  PQfinish(conn);
  double seconds = NowSeconds() - started;
  printf("rows=%ld seconds=%.3f rows_per_s=%.0f\n", target.rows, seconds,
         seconds > 0 ? (double)target.rows / seconds : 0.0);
  return 0;
}
