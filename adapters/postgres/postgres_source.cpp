#include "adapters/postgres/postgres_source.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include "adapters/first_null_sql.hpp"
#include "adapters/postgres/pg_connection.hpp"
#include "adapters/postgres/pg_sql.hpp"
#include "adapters/postgres/pg_types.hpp"
#include "runtime/base/ascii.hpp"
#include "runtime/base/readable_file.hpp"
#include "runtime/base/spelling.hpp"

namespace siphon::postgres {

namespace {

constexpr int kDefaultConnectTimeoutSeconds = 10;
constexpr int kMaxConnectTimeoutSeconds = 3600;

/// State shared by every connection of one source, on the loop thread.
struct SourceState {
  PgConnectParams params;
  int settle_seconds = 5;  ///< the horizon's hold when the role cannot see others' transactions
  std::string horizon_sql, reflect_with_horizon_sql;  ///< built once with settle_seconds
  bool warned_horizon = false;  ///< the missing pg_read_all_stats was reported
  std::string warned_stale;     ///< the long-open transaction last reported
  /// Tables that asked SafeHorizon: their reflections bring one along, on whichever of the
  /// source's connections the run borrowed.
  std::set<std::string> wants_horizon;
};

constexpr uint32_t kTimestamptzOid = 1184;
// A result column's type oid and modifier (PQftype, PQfmod): a timestamp's precision picks
// its decoder.
using ResultType = std::pair<uint32_t, int>;
constexpr int kHorizonMaxHoldSeconds = 60;  // as HorizonSql has it
// A horizon fetched with the run's reflection stands in for SafeHorizon this long after it.
constexpr std::chrono::seconds kFetchedHorizonFresh{1};

class PgSourceConnection : public SourceConnection {
 public:
  PgSourceConnection(uv_loop_t* loop, std::shared_ptr<SourceState> state)
      : state_(std::move(state)), conn_(loop, state_->params) {}

  void Connect(std::function<void(Status)> done) override { conn_.Connect(std::move(done)); }

  void Reflect(const std::string& table, std::function<void(Result<TableSchema>)> done) override {
    auto name = SplitTableName(table);
    if (!name.ok()) {
      Status s = name.status();
      conn_.Post([done = std::move(done), s] { done(s); });
      return;
    }
    std::string regclass = QuotedTableName(*name);
    // Once a table wants a horizon, every run of it does (SafeHorizon follows Reflect): both
    // come back from one statement.
    const bool with_horizon = state_->wants_horizon.count(table) != 0;
    fetched_horizon_.reset();
    WithConnection([this, table, parts = *name, regclass, with_horizon,
                    done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.QueryPrepared(
          with_horizon ? state_->reflect_with_horizon_sql : kReflectSql, {regclass},
          [this, table, parts, regclass, with_horizon,
           done = std::move(done)](Result<PgResultPtr> r) {
            if (!r.ok()) return done(r.status().WithContext("reflect " + table));
            if (PQntuples(r->get()) == 0) return NotFound(table, parts, std::move(done));
            if (with_horizon) {
              fetched_horizon_ = HorizonFrom(r->get(), 8);
              fetched_at_ = std::chrono::steady_clock::now();
            }
            Result<TableSchema> schema = SchemaFrom(table, r->get());
            const char relkind = PQgetvalue(r->get(), 0, 6)[0];
            if (schema.ok() && (relkind == 'v' || relkind == 'm')) {
              return WithViewOrigins(std::move(*schema), regclass, std::move(done));
            }
            if (schema.ok() && schema->primary_key.empty() && (relkind == 'r' || relkind == 'p')) {
              return WithUniqueIndexKey(std::move(*schema), regclass, std::move(done));
            }
            done(std::move(schema));
          });
    });
  }

  void ReflectQuery(const std::string& query,
                    std::function<void(Result<TableSchema>)> done) override {
    fetched_horizon_.reset();
    DescribeQuery(query, 0, [done = std::move(done)](Result<TableSchema> schema) {
      // 42P01 undefined_table: a relation the query names is not there (nor its schema).
      if (!schema.ok() && schema.status().message().find("(SQLSTATE 42P01)") != std::string::npos) {
        return done(QueryTableNotFound(schema.status()));
      }
      // 42703 undefined_column: a column the query names is not in its table.
      if (!schema.ok() && schema.status().message().find("(SQLSTATE 42703)") != std::string::npos) {
        return done(QueryColumnNotFound(schema.status()));
      }
      done(std::move(schema));
    });
  }

  void Pull(const TableSchema& table, const PageQuery& query,
            std::function<void(Result<RowBatch>)> done) override {
    // A page's rows are decoded as they arrive through COPY, while the server still produces
    // the rest; COPY does not say the columns' types, so the first page of a column list is a
    // plain query whose result does, and its decoders serve the pages after it (each COPY is
    // followed by a statement describing its columns, to check they still apply). When every
    // column has a binary decoder the pages after it are copied in binary format: the server
    // then skips printing numbers, timestamps and uuids as text.
    const std::string shape = PageShape(table, query);
    auto known = shapes_.find(shape);
    if (known == shapes_.end()) {
      Run(BuildPageQuery(table, query), "pull " + table.qualified_name,
          [this, shape, name = table.qualified_name,
           done = std::move(done)](Result<PgResultPtr> r) {
            if (!r.ok()) return done(r.status());
            size_t rejected = 0;
            RowBatch batch = DecodeRows(r->get(), &rejected);
            WarnRejected(name, rejected);
            if (shapes_.size() >= kMaxShapes) shapes_.clear();
            PageShapeInfo info{
                DecodersOf(r->get()), {}, TypesOf(r->get()), batch.rows(), batch.arena_bytes()};
            // A server built with floating-point timestamps (before PostgreSQL 10, by
            // choice) sends them as doubles: those pages stay text.
            const bool integer_datetimes = conn_.ParameterStatus("integer_datetimes") == "on";
            for (int c = 0; c < PQnfields(r->get()); ++c) {
              PgBinary decoder = BinaryDecoderForOid(PQftype(r->get(), c), PQfmod(r->get(), c));
              if (!integer_datetimes &&
                  (decoder == PgBinary::kTimestamp || decoder == PgBinary::kTimestampTz ||
                   decoder == PgBinary::kTimestamp0 || decoder == PgBinary::kTimestampTz0)) {
                decoder = PgBinary::kNone;
              }
              info.binary.push_back(decoder);
            }
            if (std::find(info.binary.begin(), info.binary.end(), PgBinary::kNone) !=
                info.binary.end()) {
              info.binary.clear();
            }
            shapes_[shape] = std::move(info);
            done(std::move(batch));
          });
      return;
    }
    const PageShapeInfo& info = known->second;
    const bool binary = !info.binary.empty();
    auto copy = BuildPageCopy(table, query, binary);
    if (!copy.ok()) {
      Status st = copy.status();
      conn_.Post([done = std::move(done), st] { done(st); });
      return;
    }
    auto page = std::make_shared<CopyRows>(info, query.limit);
    WithConnection([this, shape, sql = std::move(*copy), page, name = table.qualified_name,
                    done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.CopyOut(
          std::move(sql), [page](std::string_view data) { page->Feed(data); },
          [this, shape, page, name, done = std::move(done)](Result<PgResultPtr> r) {
            if (!r.ok()) return done(r.status().WithContext("pull " + name));
            // The rows were decoded for the types of the shape's first page: an ALTER TABLE
            // since then (int8 to float8 is the same eight bytes) would have them read wrong.
            if (Status st = CopyOutcome(shape, name, *page, TypesOf(r->get()) == page->types);
                !st.ok()) {
              return done(st);
            }
            auto it = shapes_.find(shape);
            if (it != shapes_.end()) {
              it->second.rows = page->batch.rows();
              it->second.arena_bytes = page->batch.arena_bytes();
            }
            done(std::move(page->batch));
          });
    });
  }

  void PullPages(const TableSchema& table, const PageQuery& query,
                 std::function<void(Result<RowBatch>, bool last)> page) override {
    // One COPY brings query.pages pages: the server produces the next page while this one is
    // transformed and written, instead of waiting for the query that asks for it. A page is
    // handed over as soon as its last row is decoded, so the column types are checked before
    // the first row: the statement that describes them comes before the COPY (its lock holds
    // from there). The first page of a column list learns the decoders: one page, as Pull.
    auto known = shapes_.find(PageShape(table, query));
    if (query.pages <= 1 || known == shapes_.end()) {
      return SourceConnection::PullPages(table, query, std::move(page));
    }
    const PageShapeInfo& info = known->second;
    PageQuery whole = query;
    whole.limit = query.limit * query.pages;
    auto copy = BuildPageCopy(table, whole, !info.binary.empty(), /*columns_first=*/true);
    if (!copy.ok()) {
      conn_.Post([page = std::move(page), st = copy.status()] { page(st, true); });
      return;
    }
    struct Stream : CopyRows {
      using CopyRows::CopyRows;
      bool types_ok = false;  // the statement before the COPY described these types
      std::function<void(Result<RowBatch>, bool)> page;
    };
    auto stream = std::make_shared<Stream>(info, query.limit);
    stream->page = std::move(page);
    const std::string shape = known->first;
    WithConnection([this, shape, sql = std::move(*copy), stream,
                    name = table.qualified_name](Status s) mutable {
      if (!s.ok()) return stream->page(s, true);
      conn_.CopyOut(
          std::move(sql),
          [stream](const PGresult* described) {
            // An ALTER TABLE since the shape's first page (int8 to float8 is the same eight
            // bytes) would have the rows read wrong: none is decoded then.
            stream->types_ok = described != nullptr && TypesOf(described) == stream->types;
          },
          [this, stream](std::string_view data) {
            if (stream->malformed || !stream->types_ok) return;
            // A whole page goes when the next row comes (not the binary trailer): the last
            // page is then always handed over as the last, full when the COPY stopped at
            // its limit with rows left behind it.
            if (stream->batch.rows() >= stream->limit &&
                !(stream->binary && data == std::string_view("\xff\xff", 2))) {
              // Posted, as the last call is: the pages arrive in order.
              auto full = std::make_shared<RowBatch>(std::move(stream->batch));
              stream->Fresh();
              conn_.Post([stream, full] { stream->page(std::move(*full), false); });
            }
            stream->Feed(data);
          },
          [this, shape, stream, name](Result<PgResultPtr> r) {
            auto outcome = [&]() -> Result<RowBatch> {
              if (!r.ok()) return r.status().WithContext("pull " + name);
              if (Status st = CopyOutcome(shape, name, *stream, stream->types_ok); !st.ok()) {
                return st;
              }
              return std::move(stream->batch);
            };
            auto last = std::make_shared<Result<RowBatch>>(outcome());
            conn_.Post([stream, last] { stream->page(std::move(*last), true); });
          });
    });
  }

  std::string PageSql(const TableSchema& table, const PageQuery& query) const override {
    auto st = BuildPageQuery(table, query);
    if (!st.ok()) return "-- " + st.status().message();
    return st->sql;
  }

  void SafeHorizon(const TableSchema& table, const std::string& column,
                   const std::optional<CursorValue>& after,
                   std::function<void(Result<std::optional<CursorValue>>)> done) override {
    int idx = table.Find(column);
    // An integer (a sequence's ids, say) is held below the rows committed by transactions
    // younger than the oldest one still writing: it may yet commit an id it took earlier.
    if (idx >= 0 && IsCounted(table.columns[idx].source_type) && table.query.empty() &&
        !no_row_versions_.count(table.qualified_name)) {
      return CountedHorizon(table, column, after, std::move(done));
    }
    // Only timestamptz columns are compared with transaction start times; a plain timestamp
    // holds whatever local time the application wrote.
    if (idx < 0 || !IsTimestamptz(table.columns[idx].source_type)) {
      done(std::optional<CursorValue>());
      return;
    }
    state_->wants_horizon.insert(table.qualified_name);
    // The horizon that came with this run's reflection: taken a moment earlier, so it holds
    // back at most a little more. Used once, and only while it is that fresh.
    std::optional<std::optional<CursorValue>> fetched = std::move(fetched_horizon_);
    fetched_horizon_.reset();
    if (fetched && std::chrono::steady_clock::now() - fetched_at_ < kFetchedHorizonFresh) {
      conn_.Post([done = std::move(done), h = std::move(*fetched)] { done(h); });
      return;
    }
    WithConnection([this, done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.QueryPrepared(state_->horizon_sql, {},
                          [this, done = std::move(done)](Result<PgResultPtr> r) {
                            if (!r.ok()) return done(r.status().WithContext("safe horizon"));
                            if (PQntuples(r->get()) != 1) return done(std::optional<CursorValue>());
                            done(HorizonFrom(r->get(), 0));
                          });
    });
  }

  void FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                 std::function<void(Result<std::optional<std::string>>)> done) override {
    Result<PageStatement> st = Status::Ok();
    if (auto from = FromClause(table); from.ok()) {
      st = PageStatement{FirstNullSql(columns, QuoteIdent, *from), {}};
    } else {
      st = from.status();
    }
    Run(std::move(st), "look for NULL keys",
        [columns, done = std::move(done)](Result<PgResultPtr> r) {
          if (!r.ok()) return done(r.status());
          if (PQntuples(r->get()) == 0) return done(std::optional<std::string>());
          done(std::optional<std::string>(
              FirstNullColumn(columns, atoll(PQgetvalue(r->get(), 0, 0)))));
        });
  }

  void DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                  const KeyRange& range, const std::vector<Cursor>& splits,
                  std::function<void(Result<std::vector<KeyDigest>>)> done) override {
    const size_t parts = splits.size() + 1;
    Run(BuildDigestQuery(table, key, range, splits), "digest keys of " + table.qualified_name,
        [parts, done = std::move(done)](Result<PgResultPtr> r) {
          if (!r.ok()) return done(r.status());
          const PGresult* res = r->get();
          std::vector<KeyDigest> out(parts);
          for (int row = 0; row < PQntuples(res); ++row) {
            size_t b = strtoull(PQgetvalue(res, row, 0), nullptr, 10);
            if (b >= parts) continue;
            out[b].count = strtoll(PQgetvalue(res, row, 1), nullptr, 10);
            out[b].sum_hi = strtoll(PQgetvalue(res, row, 2), nullptr, 10);
            out[b].sum_lo = strtoll(PQgetvalue(res, row, 3), nullptr, 10);
          }
          done(std::move(out));
        });
  }

  void FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                const std::vector<Cursor>& keys,
                std::function<void(Result<std::vector<Cursor>>)> done) override {
    Run(BuildFindKeysQuery(table, key, keys), "find keys of " + table.qualified_name,
        [done = std::move(done)](Result<PgResultPtr> r) {
          if (!r.ok()) return done(r.status());
          size_t rejected = 0;
          done(CursorsOf(DecodeRows(r->get(), &rejected)));
        });
  }

  void Close() override { conn_.Close(); }

 private:
  // Reflect and Pull open the connection themselves when it is not open (or was lost).
  void WithConnection(std::function<void(Status)> then) {
    if (conn_.ready()) {
      then(Status::Ok());  // `then` only starts an asynchronous query
    } else {
      conn_.Connect(std::move(then));
    }
  }

  // What a page's columns decode with, and the size of the last page (to reserve for).
  struct PageShapeInfo {
    std::vector<PgDecoder> decoders;
    std::vector<PgBinary> binary;   // empty: a column has no binary decoder, copy as text
    std::vector<ResultType> types;  // the columns' types the decoders were chosen for
    size_t rows = 0;
    size_t arena_bytes = 0;
  };

  // The rows of one COPY, decoded as they arrive into pages of `limit` rows (Pull, PullPages).
  struct CopyRows {
    CopyRows(const PageShapeInfo& info, size_t limit)
        : decoders(info.decoders),
          reader(info.binary),
          types(info.types),
          binary(!info.binary.empty()),
          limit(limit),
          reserve_rows(std::min<size_t>(limit, info.rows + info.rows / 8 + 16)),
          reserve_bytes(info.arena_bytes + info.arena_bytes / 8) {
      Fresh();
    }
    std::vector<PgDecoder> decoders;  // text format
    BinaryCopyReader reader;          // binary format
    std::vector<ResultType> types;    // the column types the decoders were chosen for
    bool binary = false;
    size_t limit = 0;
    size_t reserve_rows = 0;
    size_t reserve_bytes = 0;
    RowBatch batch;
    size_t rejected = 0;
    bool malformed = false;
    // A new, empty page.
    void Fresh() {
      batch = RowBatch(types.size());
      batch.Reserve(reserve_rows, reserve_bytes);
    }
    // Appends the rows of one COPY data message (a row, in text format with its newline).
    void Feed(std::string_view data) {
      if (malformed) return;
      if (binary) {
        malformed = !reader.Feed(data, batch);
      } else {
        if (!data.empty() && data.back() == '\n') data.remove_suffix(1);
        malformed = !DecodeCopyRow(data, decoders, batch, &rejected);
      }
    }
  };

  // How a COPY that ended without an error went: its rows decoded with the types it sent
  // (`types_ok`) and whole, or the error (the shape is then forgotten, so the next page asks
  // the server for the types again).
  Status CopyOutcome(const std::string& shape, const std::string& name, const CopyRows& rows,
                     bool types_ok) {
    if (!types_ok) {
      shapes_.erase(shape);
      return Status(ErrorKind::kQuery, "pull " + name +
                                           ": a column changed type while the run read the "
                                           "table; the next run reads its schema again");
    }
    if (rows.malformed || (rows.binary && !rows.reader.finished())) {
      shapes_.erase(shape);
      return Status(ErrorKind::kQuery,
                    "pull " + name + ": a COPY row does not match the page's columns");
    }
    WarnRejected(name, rows.rejected);
    return Status::Ok();
  }
  static constexpr size_t kMaxShapes = 64;

  // The table and its selected columns with their types: pages of one shape share decoders.
  static std::string PageShape(const TableSchema& table, const PageQuery& query) {
    std::string shape = table.qualified_name;
    for (const auto& c : query.columns) {
      int idx = table.Find(c);
      shape += '\n' + c + '\t' + (idx < 0 ? std::string("?") : table.columns[idx].source_type);
    }
    return shape;
  }

  static std::vector<ResultType> TypesOf(const PGresult* result) {
    std::vector<ResultType> types(static_cast<size_t>(PQnfields(result)));
    for (size_t c = 0; c < types.size(); ++c) {
      types[c] = {PQftype(result, static_cast<int>(c)), PQfmod(result, static_cast<int>(c))};
    }
    return types;
  }

  static bool IsCounted(const std::string& type) {
    return type == "bigint" || type == "integer" || type == "smallint";
  }

  void CountedHorizon(const TableSchema& table, const std::string& column,
                      const std::optional<CursorValue>& after,
                      std::function<void(Result<std::optional<CursorValue>>)> done) {
    auto sql = CountedHorizonSql(table, column, after.has_value());
    if (!sql.ok()) {
      conn_.Post([done = std::move(done), st = sql.status()] { done(st); });
      return;
    }
    std::vector<std::string> params;
    if (after) params.push_back(CursorParam(*after));
    WithConnection([this, sql = std::move(*sql), params = std::move(params),
                    name = table.qualified_name, done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.QueryPrepared(
          std::move(sql), std::move(params),
          [this, name, done = std::move(done)](Result<PgResultPtr> r) {
            if (!r.ok()) {
              // A view has no row versions (xmin) to read: no horizon for it.
              if (r.status().message().find("(SQLSTATE 42703)") != std::string::npos) {
                no_row_versions_.insert(name);
                return done(std::optional<CursorValue>());
              }
              return done(r.status().WithContext("safe horizon"));
            }
            if (PQntuples(r->get()) != 1) return done(std::optional<CursorValue>());
            done(HorizonFrom(r->get(), 0, true));
          });
    });
  }

  // The horizon in columns `col` to `col + 2` of the first row (HorizonSql's three), with
  // its warnings: a transaction open too long, a role that cannot see the others'. A
  // `counted` horizon is an integer, and needs no privilege (see CountedHorizonSql).
  std::optional<CursorValue> HorizonFrom(const PGresult* res, int col, bool counted = false) {
    if (PQgetisnull(res, 0, col)) return std::nullopt;
    if (counted) return CursorValue(static_cast<int64_t>(std::stoll(PQgetvalue(res, 0, col))));
    if (!PQgetisnull(res, 0, col + 1) && state_->warned_stale != PQgetvalue(res, 0, col + 1)) {
      state_->warned_stale = PQgetvalue(res, 0, col + 1);
      spdlog::warn(
          "postgres: a write transaction has been open for over {} s and no longer holds "
          "back replication ({}); rows it commits are only caught by `lookback`",
          kHorizonMaxHoldSeconds, PQgetvalue(res, 0, col + 1));
    }
    if (PQgetvalue(res, 0, col + 2)[0] != 't' && !state_->warned_horizon) {
      state_->warned_horizon = true;
      spdlog::warn(
          "postgres: the role cannot see other sessions' transactions (grant it "
          "pg_read_all_stats): incremental runs hold {} s back (`settle`), and a commit later "
          "than that is only caught by `lookback`",
          state_->settle_seconds);
    }
    RowBatch one(1);
    const char* text = PQgetvalue(res, 0, col);
    AppendPgValue(DecoderForOid(kTimestamptzOid, -1), text, strlen(text), one);
    return CursorValueOf(one, 0, 0);
  }

  // Views over views are followed this deep (DescribeQuery).
  static constexpr int kMaxViewDepth = 8;

  // A query's columns: the server describes its result (LIMIT 0 runs nothing); the catalog
  // then names each column's type and, for a column taken as it is from a table, its NOT NULL.
  // A column taken as it is from a view's is NOT NULL when the view's own query says so.
  void DescribeQuery(const std::string& query, int depth,
                     std::function<void(Result<TableSchema>)> done) {
    TableSchema shell;
    shell.query = query;
    auto from = FromClause(shell);
    WithConnection([this, shell = std::move(shell), sql = "SELECT * FROM " + *from + " LIMIT 0",
                    depth, done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.Query(
          sql, {},
          [this, shell = std::move(shell), depth,
           done = std::move(done)](Result<PgResultPtr> r) mutable {
            if (!r.ok()) return done(r.status().WithContext("reflect the query"));
            const PGresult* res = r->get();
            std::vector<std::pair<uint32_t, int>> origins;  // table oid, attribute number
            std::vector<std::string> arrays(4, "{");
            for (int c = 0; c < PQnfields(res); ++c) {
              const std::string name = PQfname(res, c);
              if (shell.Find(name) >= 0) {
                return done(Status(ErrorKind::kConfig, "the query returns two columns named \"" +
                                                           name +
                                                           "\": give them distinct names (AS …)"));
              }
              ColumnInfo column;
              column.name = name;
              shell.columns.push_back(std::move(column));
              const char* sep = c > 0 ? "," : "";
              arrays[0] += sep + std::to_string(PQftype(res, c));
              arrays[1] += sep + std::to_string(PQfmod(res, c));
              arrays[2] += sep + std::to_string(PQftable(res, c));
              arrays[3] += sep + std::to_string(PQftablecol(res, c));
              origins.emplace_back(PQftable(res, c), PQftablecol(res, c));
            }
            if (shell.columns.empty()) {
              return done(Status(ErrorKind::kConfig, "the query returns no columns"));
            }
            for (auto& a : arrays) a += "}";
            conn_.Query(kQueryTypesSql, std::move(arrays),
                        [this, shell = std::move(shell), origins = std::move(origins), depth,
                         done = std::move(done)](Result<PgResultPtr> types) mutable {
                          if (!types.ok())
                            return done(types.status().WithContext("reflect the query"));
                          Result<TableSchema> schema =
                              QuerySchemaFrom(std::move(shell), types->get());
                          if (!schema.ok() || depth >= kMaxViewDepth)
                            return done(std::move(schema));
                          ViewColumns from_views;
                          for (size_t c = 0; c < schema->columns.size(); ++c) {
                            if (schema->columns[c].nullable &&
                                PQgetvalue(types->get(), static_cast<int>(c), 3)[0] == 't') {
                              from_views[origins[c].first].emplace_back(c, origins[c].second);
                            }
                          }
                          WithViewColumns(std::move(*schema), std::move(from_views), depth,
                                          std::move(done));
                        });
          });
    });
  }

  // The catalog marks no column of a view (or a materialized view) NOT NULL, so none could
  // be a key or cursor column. The view's own query says more: a column it takes as it is
  // from a NOT NULL column of a table is NOT NULL (as for a `query`). When that query cannot
  // be described (a table behind it the role may not read), the catalog's answer stands.
  void WithViewOrigins(TableSchema schema, const std::string& regclass,
                       std::function<void(Result<TableSchema>)> done) {
    ViewNotNull(regclass, 1,
                [schema = std::move(schema),
                 done = std::move(done)](Result<std::vector<bool>> not_null) mutable {
                  if (!not_null.ok()) return done(not_null.status());
                  if (not_null->size() == schema.columns.size()) {
                    for (size_t c = 0; c < schema.columns.size(); ++c) {
                      if ((*not_null)[c]) schema.columns[c].nullable = false;
                    }
                  }
                  done(std::move(schema));
                });
  }

  // Which columns of a view (`regclass`: a name or an oid) its query shows NOT NULL, `depth`
  // views down; none when the query cannot be described. Only a lost connection is an error.
  void ViewNotNull(const std::string& regclass, int depth,
                   std::function<void(Result<std::vector<bool>>)> done) {
    conn_.Query("SELECT pg_catalog.pg_get_viewdef($1::pg_catalog.regclass)", {regclass},
                [this, depth, done = std::move(done)](Result<PgResultPtr> r) mutable {
                  if (!r.ok() && (r.status().kind() == ErrorKind::kConnect ||
                                  r.status().kind() == ErrorKind::kCancelled)) {
                    return done(r.status());
                  }
                  if (!r.ok() || PQntuples(r->get()) != 1 || PQgetisnull(r->get(), 0, 0)) {
                    return done(std::vector<bool>());
                  }
                  std::string query = PQgetvalue(r->get(), 0, 0);
                  while (!query.empty() && (query.back() == ';' ||
                                            isspace(static_cast<unsigned char>(query.back())))) {
                    query.pop_back();
                  }
                  DescribeQuery(query, depth, [done = std::move(done)](Result<TableSchema> view) {
                    if (!view.ok() && (view.status().kind() == ErrorKind::kConnect ||
                                       view.status().kind() == ErrorKind::kCancelled)) {
                      return done(view.status());
                    }
                    std::vector<bool> not_null;
                    if (view.ok()) {
                      for (const ColumnInfo& c : view->columns) not_null.push_back(!c.nullable);
                    }
                    done(std::move(not_null));
                  });
                });
  }

  // A query's columns taken as they are from views' columns, by view oid: (column, the view
  // column's attribute number).
  using ViewColumns = std::map<uint32_t, std::vector<std::pair<size_t, int>>>;

  // Marks NOT NULL the columns of `schema` whose view column is, one view at a time.
  void WithViewColumns(TableSchema schema, ViewColumns views, int depth,
                       std::function<void(Result<TableSchema>)> done) {
    if (views.empty()) return done(std::move(schema));
    const uint32_t view = views.begin()->first;
    ViewNotNull(std::to_string(view), depth + 1,
                [this, schema = std::move(schema), views = std::move(views), depth,
                 done = std::move(done)](Result<std::vector<bool>> not_null) mutable {
                  if (!not_null.ok()) return done(not_null.status());
                  for (const auto& [column, attnum] : views.begin()->second) {
                    if (attnum >= 1 && static_cast<size_t>(attnum) <= not_null->size() &&
                        (*not_null)[static_cast<size_t>(attnum) - 1]) {
                      schema.columns[column].nullable = false;
                    }
                  }
                  views.erase(views.begin());
                  WithViewColumns(std::move(schema), std::move(views), depth, std::move(done));
                });
  }

  // A table without a primary key: its key is a unique index that identifies rows as one
  // would, when it has one (TakeKeyFromUniqueIndex chooses).
  void WithUniqueIndexKey(TableSchema schema, const std::string& regclass,
                          std::function<void(Result<TableSchema>)> done) {
    conn_.QueryPrepared(
        kUniqueIndexesSql, {regclass},
        [schema = std::move(schema), done = std::move(done)](Result<PgResultPtr> r) mutable {
          if (!r.ok()) return done(r.status().WithContext("reflect " + schema.qualified_name));
          std::vector<UniqueIndex> indexes;
          // "index\ncolumn" -> the collation the index holds the column under, not its own.
          std::map<std::string, std::string> collations;
          const PGresult* res = r->get();
          for (int row = 0; row < PQntuples(res); ++row) {
            const std::string name = PQgetvalue(res, row, 0);
            if (indexes.empty() || indexes.back().name != name) {
              indexes.push_back(UniqueIndex{name, {}, {}});
            }
            UniqueIndex& index = indexes.back();
            if (!PQgetisnull(res, row, 1)) index.columns.push_back(PQgetvalue(res, row, 1));
            if (index.unusable.empty() && !PQgetisnull(res, row, 2)) {
              index.unusable = PQgetvalue(res, row, 2);
            }
            if (!PQgetisnull(res, row, 1) && !PQgetisnull(res, row, 3)) {
              collations[name + "\n" + PQgetvalue(res, row, 1)] = PQgetvalue(res, row, 3);
            }
          }
          TakeKeyFromUniqueIndex(schema, indexes);
          // A key index under "POSIX" on a "C" column (kUniqueIndexesSql): pages name its
          // collation, so the server reads them through it rather than sorting the table.
          for (const std::string& k : schema.primary_key) {
            auto it = collations.find(schema.key_index + "\n" + k);
            const int at = schema.Find(k);
            if (it != collations.end() && at >= 0) schema.columns[at].key_collation = it->second;
          }
          done(std::move(schema));
        });
  }

  // A table Reflect did not find: the error names the database (and the search_path when
  // `from` names no schema) and tables spelled otherwise (in case, or in another schema) that
  // the script may have meant. A `from` that names no table is the script's mistake, as a
  // column it names that is not there is (kConfig). A failing look-up only leaves its part
  // out.
  void NotFound(const std::string& from, const TableName& name,
                std::function<void(Result<TableSchema>)> done) {
    conn_.Query(kNotFoundWhereSql, {},
                [this, from, name, done = std::move(done)](Result<PgResultPtr> r) mutable {
                  if (!r.ok() && (r.status().kind() == ErrorKind::kConnect ||
                                  r.status().kind() == ErrorKind::kCancelled)) {
                    return done(r.status().WithContext("reflect " + from));
                  }
                  NotFoundWhere where;
                  if (r.ok() && PQntuples(r->get()) == 1) {
                    where.database = PQgetvalue(r->get(), 0, 0);
                    if (name.schema.empty()) where.search_path = PQgetvalue(r->get(), 0, 1);
                  }
                  SimilarTables(from, name, std::move(where), std::move(done));
                });
  }

  void SimilarTables(const std::string& from, const TableName& name, NotFoundWhere where,
                     std::function<void(Result<TableSchema>)> done) {
    conn_.Query(
        kSimilarTablesSql, {name.schema, name.table},
        [from, name, where = std::move(where), done = std::move(done)](Result<PgResultPtr> r) {
          // A connection lost or closed meanwhile is that error; any other failure of this
          // look-up only leaves the names out.
          if (!r.ok() && (r.status().kind() == ErrorKind::kConnect ||
                          r.status().kind() == ErrorKind::kCancelled)) {
            return done(r.status().WithContext("reflect " + from));
          }
          std::vector<std::string> similar;
          bool case_differs = false;
          const PGresult* res = r.ok() ? r->get() : nullptr;
          auto spelling = [&](int row) {
            const bool visible = PQgetvalue(res, row, 2)[0] == 't';
            return FromSpelling(
                name.schema.empty() && visible ? std::string() : PQgetvalue(res, row, 0),
                PQgetvalue(res, row, 1));
          };
          // Names that differ only in case come first (at most 3).
          int rows = res != nullptr ? PQntuples(res) : 0;
          for (int row = 0; row < rows && similar.size() < 3; ++row) {
            if (PQgetvalue(res, row, 3)[0] != 't') break;
            const std::string schema = PQgetvalue(res, row, 0);
            const std::string table = PQgetvalue(res, row, 1);
            case_differs = case_differs || table != name.table ||
                           (schema != name.schema && AsciiLower(schema) == AsciiLower(name.schema));
            similar.push_back(spelling(row));
          }
          // Otherwise a typo: the closest names of the schema `from` names.
          if (similar.empty()) {
            std::vector<std::string> tables;
            for (int row = 0; row < rows; ++row) tables.emplace_back(PQgetvalue(res, row, 1));
            for (const std::string& table : ClosestNames(name.table, tables, 3)) {
              const auto at = std::find(tables.begin(), tables.end(), table) - tables.begin();
              similar.push_back(spelling(static_cast<int>(at)));
            }
          }
          done(
              Status(ErrorKind::kConfig, TableNotFoundMessage(from, where, similar, case_differs)));
        });
  }

  static void WarnRejected(const std::string& name, size_t rejected) {
    if (rejected > 0) {
      spdlog::warn("postgres {}: {} values kept as text (unexpected format)", name, rejected);
    }
  }

  // Runs a built statement (opening the connection first when needed); a statement that
  // could not be built is answered from the loop. Errors carry `context`.
  void Run(Result<PageStatement> st, std::string context,
           std::function<void(Result<PgResultPtr>)> done) {
    if (!st.ok()) {
      Status s = st.status();
      conn_.Post([done = std::move(done), s] { done(s); });
      return;
    }
    WithConnection([this, st = std::move(*st), context = std::move(context),
                    done = std::move(done)](Status s) mutable {
      if (!s.ok()) return done(s);
      conn_.Query(std::move(st.sql), std::move(st.params),
                  [context, done = std::move(done)](Result<PgResultPtr> r) {
                    if (!r.ok()) return done(r.status().WithContext(context));
                    done(std::move(r));
                  });
    });
  }

  Result<TableSchema> SchemaFrom(const std::string& table, const PGresult* res) {
    const int rows = PQntuples(res);
    TableSchema schema;
    schema.qualified_name = table;
    std::vector<std::pair<int, std::string>> key;
    for (int r = 0; r < rows; ++r) {
      ColumnInfo c;
      c.name = PQgetvalue(res, r, 0);
      c.source_type = PQgetvalue(res, r, 1);
      c.nullable = PQgetvalue(res, r, 2)[0] != 't';
      char typtype = PQgetvalue(res, r, 3)[0];
      PgTypeClass cls = ClassifyType(c.source_type, typtype);
      c.type = cls.type;
      c.order = cls.order;
      if (!PQgetisnull(res, r, 4)) key.emplace_back(atoi(PQgetvalue(res, r, 4)), c.name);
      c.text_form = cls.text_form;
      c.stored_order = cls.stored_order;
      c.loose_equality =
          LooseEquality(cls, PQgetisnull(res, r, 7) ? nullptr : PQgetvalue(res, r, 7));
      schema.columns.push_back(std::move(c));
    }
    std::sort(key.begin(), key.end());
    for (auto& k : key) schema.primary_key.push_back(std::move(k.second));
    double reltuples = atof(PQgetvalue(res, 0, 5));
    char relkind = PQgetvalue(res, 0, 6)[0];
    // reltuples is -1 until the first VACUUM/ANALYZE; views have no statistics at all.
    schema.row_estimate =
        (reltuples < 0 || relkind == 'v') ? -1 : static_cast<int64_t>(std::llround(reltuples));
    return schema;
  }

  // A query's columns (named, in order, in `schema`) typed from kQueryTypesSql's rows.
  Result<TableSchema> QuerySchemaFrom(TableSchema schema, const PGresult* res) {
    if (PQntuples(res) != static_cast<int>(schema.columns.size())) {
      return Status(ErrorKind::kSchema, "the types of the query's columns could not be read");
    }
    schema.qualified_name = "query";
    for (size_t r = 0; r < schema.columns.size(); ++r) {
      ColumnInfo& c = schema.columns[r];
      const int row = static_cast<int>(r);
      c.source_type = PQgetvalue(res, row, 0);
      c.nullable = PQgetvalue(res, row, 1)[0] != 't';
      PgTypeClass cls = ClassifyType(c.source_type, PQgetvalue(res, row, 2)[0]);
      c.type = cls.type;
      c.order = cls.order;
      c.text_form = cls.text_form;
      c.stored_order = cls.stored_order;
      c.loose_equality =
          LooseEquality(cls, PQgetisnull(res, row, 4) ? nullptr : PQgetvalue(res, row, 4));
    }
    return schema;
  }

  std::shared_ptr<SourceState> state_;
  PgConnection conn_;
  std::map<std::string, PageShapeInfo> shapes_;                // by PageShape
  std::set<std::string> no_row_versions_;                      // views: no counted horizon
  std::optional<std::optional<CursorValue>> fetched_horizon_;  // from the last reflection
  std::chrono::steady_clock::time_point fetched_at_;
};

class PgSource : public Source {
 public:
  PgSource(std::shared_ptr<SourceState> state, std::string description)
      : state_(std::move(state)), description_(std::move(description)) {}

  std::string_view kind() const override { return "postgres"; }
  std::string Describe() const override { return description_; }
  std::unique_ptr<SourceConnection> NewConnection(uv_loop_t* loop) override {
    return std::make_unique<PgSourceConnection>(loop, state_);
  }

 private:
  std::shared_ptr<SourceState> state_;
  std::string description_;
};

const std::string* GetString(const Options& options, const std::string& name) {
  auto it = options.find(name);
  if (it == options.end()) return nullptr;
  return std::get_if<std::string>(&it->second);
}

std::optional<int64_t> GetInt(const Options& options, const std::string& name) {
  auto it = options.find(name);
  if (it == options.end()) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(&it->second)) return *i;
  if (const auto* s = std::get_if<std::string>(&it->second)) {
    char* end = nullptr;
    long long v = strtoll(s->c_str(), &end, 10);
    if (end != s->c_str() && *end == '\0') return v;
  }
  return std::nullopt;
}

std::string DescribeTarget(const std::string& host, const std::string& port,
                           const std::string& dbname, const std::string& user) {
  std::string out = "postgres " + (host.empty() ? std::string("localhost") : host) + ":" +
                    (port.empty() ? std::string("5432") : port) + "/" +
                    (dbname.empty() ? user : dbname);
  if (!user.empty()) out += " user=" + user;
  return out;
}

// sslmode and the certificate files, field by field. A file that cannot be read stops
// start-up with its name (libpq would name it only at each connection attempt).
Status ApplySslFields(const Options& options, PgConnectParams& params) {
  const std::string* mode = GetString(options, "sslmode");
  if (mode != nullptr) {
    static const std::set<std::string> kModes = {"disable", "allow",     "prefer",
                                                 "require", "verify-ca", "verify-full"};
    if (!kModes.count(*mode)) {
      return Status(ErrorKind::kConfig,
                    "siphon.postgres: `sslmode` must be one of disable, allow, prefer, "
                    "require, verify-ca, verify-full");
    }
  }
  for (const char* field : {"sslrootcert", "sslcert", "sslkey"}) {
    const std::string* path = GetString(options, field);
    if (path == nullptr) continue;
    // A folder opens (only reading it fails), so it passed here and failed every connection.
    if (std::string why = UnreadableFileReason(*path); !why.empty()) {
      return Status(ErrorKind::kConfig, std::string("siphon.postgres: `") + field +
                                            "`: cannot read \"" + *path + "\": " + why);
    }
  }
  if (options.count("sslcert") != options.count("sslkey")) {
    return Status(ErrorKind::kConfig,
                  "siphon.postgres: `sslcert` and `sslkey` go together (the client certificate "
                  "and its key)");
  }
  const std::string* root = GetString(options, "sslrootcert");
  if (root != nullptr && mode != nullptr && *mode == "require") {
    // libpq reads require with a CA file as verify-ca: the signature is checked, the host
    // name is not, so a certificate the CA issued to any other host would be taken. A user
    // who gave a CA expects the server checked, as sslrootcert alone (verify-full) does.
    return Status(ErrorKind::kConfig,
                  "siphon.postgres: `sslmode = \"require\"` with `sslrootcert` checks that the "
                  "server's certificate is signed by that CA but not that it names the host "
                  "(libpq then acts as verify-ca): give sslmode = \"verify-full\" (or leave "
                  "sslmode out, which then means verify-full), or \"verify-ca\" to check the "
                  "signature only");
  }
  if (root != nullptr && mode != nullptr && *mode != "verify-ca" && *mode != "verify-full") {
    return Status(ErrorKind::kConfig, "siphon.postgres: `sslmode = \"" + *mode +
                                          "\"` does not verify the server, so `sslrootcert` "
                                          "would not be used: give verify-full (or leave "
                                          "sslmode out, which then means verify-full)");
  }
  // A CA given is a CA to verify against: without sslmode, libpq's default (prefer) would
  // not even require TLS.
  if (mode != nullptr) {
    params.keywords.emplace_back("sslmode", *mode);
  } else if (root != nullptr) {
    params.keywords.emplace_back("sslmode", "verify-full");
  }
  for (const char* field : {"sslrootcert", "sslcert", "sslkey"}) {
    if (const std::string* path = GetString(options, field)) {
      params.keywords.emplace_back(field, *path);
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Source>> Make(const Options& options) {
  static const char* const kFields[] = {"host",    "port",        "user",    "password", "database",
                                        "sslmode", "sslrootcert", "sslcert", "sslkey"};
  auto state = std::make_shared<SourceState>();
  PgConnectParams& params = state->params;
  std::string host, port, dbname, user;
  std::optional<int64_t> timeout_seconds = GetInt(options, "connect_timeout");
  std::optional<std::string> dsn_timeout;  // connect_timeout as the dsn spells it

  const std::string* dsn = GetString(options, "dsn");
  if (dsn != nullptr) {
    std::string given;
    for (const char* f : kFields) {
      if (options.count(f)) given += std::string(given.empty() ? "" : ", ") + f;
    }
    if (!given.empty()) {
      return Status(ErrorKind::kConfig, "siphon.postgres: `dsn` cannot be combined with " + given +
                                            "; give either dsn or the separate fields");
    }
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(dsn->c_str(), &err);
    if (parsed == nullptr) {
      // libpq's message may quote part of the string (a password among it): only name the key.
      std::string why =
          err != nullptr && std::string_view(err).rfind("invalid connection option", 0) == 0
              ? std::string(": ") + err
              : std::string();
      if (err != nullptr) PQfreemem(err);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      return Status(ErrorKind::kConfig,
                    "siphon.postgres: `dsn` is not a libpq connection string or URI" + why);
    }
    for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
      if (o->val == nullptr) continue;
      std::string_view k = o->keyword;
      if (k == "host") host = o->val;
      if (k == "hostaddr" && host.empty()) host = o->val;
      if (k == "port") port = o->val;
      if (k == "dbname") dbname = o->val;
      if (k == "user") user = o->val;
      if (k == "password") params.password = o->val;
      if (k == "connect_timeout") dsn_timeout = o->val;
    }
    PQconninfoFree(parsed);
    if (dsn_timeout && !timeout_seconds) {
      // As libpq reads it: an integer, trailing blanks allowed.
      std::string_view v = *dsn_timeout;
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
      int64_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || v.empty()) {
        return Status(ErrorKind::kConfig,
                      "siphon.postgres: connect_timeout in `dsn` is not a whole number of seconds");
      }
      timeout_seconds = n;
    }
    params.keywords.emplace_back("dbname", *dsn);
    params.expand_dbname = true;
  } else {
    const std::string* h = GetString(options, "host");
    if (h == nullptr) {
      return Status(ErrorKind::kConfig, "siphon.postgres needs `dsn` or `host`");
    }
    host = *h;
    params.keywords.emplace_back("host", host);
    if (auto p = GetInt(options, "port")) {
      if (*p < 1 || *p > 65535) {
        return Status(ErrorKind::kConfig, "siphon.postgres: `port` must be 1..65535");
      }
      port = std::to_string(*p);
      params.keywords.emplace_back("port", port);
    }
    if (const auto* u = GetString(options, "user")) {
      user = *u;
      params.keywords.emplace_back("user", user);
    }
    if (const auto* pw = GetString(options, "password")) {
      params.password = *pw;
      params.keywords.emplace_back("password", *pw);
    }
    if (const auto* d = GetString(options, "database")) {
      dbname = *d;
      params.keywords.emplace_back("dbname", dbname);
    }
    if (Status st = ApplySslFields(options, params); !st.ok()) return st;
  }
  if (timeout_seconds && (*timeout_seconds < 1 || *timeout_seconds > kMaxConnectTimeoutSeconds)) {
    std::string where = dsn_timeout && !options.count("connect_timeout")
                            ? "connect_timeout=" + std::to_string(*timeout_seconds) + " in `dsn`"
                            : std::string("`connect_timeout`");
    std::string message = "siphon.postgres: " + where + " must be between 1 and " +
                          std::to_string(kMaxConnectTimeoutSeconds) + " seconds";
    // libpq reads 0 (or less) as "wait forever"; siphon's own timer is what ends an attempt
    // on a server that accepts and never answers, so a run cannot hang on one.
    if (*timeout_seconds < 1) {
      message +=
          " (0 means no limit to libpq, which siphon does not allow: a server that never "
          "answers would hold the run for good; give the seconds to wait, default " +
          std::to_string(kDefaultConnectTimeoutSeconds) + ")";
    }
    return Status(ErrorKind::kConfig, message);
  }
  params.connect_timeout_ms =
      static_cast<int>(timeout_seconds.value_or(kDefaultConnectTimeoutSeconds) * 1000);
  if (auto read = GetInt(options, "read_timeout")) {
    if (*read < 1 || *read > 86400) {
      return Status(ErrorKind::kConfig,
                    "siphon.postgres: `read_timeout` must be between 1 and 86400 seconds");
    }
    params.read_timeout_ms = static_cast<int>(*read * 1000);
  }
  if (auto settle = GetInt(options, "settle")) {
    if (*settle < 0 || *settle > 3600) {
      return Status(ErrorKind::kConfig,
                    "siphon.postgres: `settle` must be between 0 and 3600 seconds");
    }
    state->settle_seconds = static_cast<int>(*settle);
  }
  state->horizon_sql = HorizonSql(state->settle_seconds);
  state->reflect_with_horizon_sql = ReflectWithHorizonSql(state->settle_seconds);
  // Set after the dsn so they override it: the decoders need UTF-8 text.
  params.keywords.emplace_back("client_encoding", "UTF8");
  if (const auto* app = GetString(options, "application_name")) {
    params.keywords.emplace_back("application_name", *app);
  } else {
    params.keywords.emplace_back("fallback_application_name", "siphon");
  }
  std::string description = DescribeTarget(host, port, dbname, user);
  return std::unique_ptr<Source>(new PgSource(std::move(state), std::move(description)));
}

}  // namespace

SourceDefinition Definition() {
  SourceDefinition d;
  d.kind = "postgres";
  d.options = {
      {"dsn", OptionType::kString, false,
       "libpq connection string or URI (postgresql://user@host:5432/db); not with host etc."},
      {"host", OptionType::kString, false, "server host name or address"},
      {"port", OptionType::kInteger, false, "server port (default 5432)"},
      {"user", OptionType::kString, false, "role to connect as"},
      {"password", OptionType::kString, false, "password (never printed)"},
      {"database", OptionType::kString, false, "database name (default: the user name)"},
      {"sslmode", OptionType::kString, false,
       "disable, allow, prefer (default; verify-full with sslrootcert), require, verify-ca, "
       "verify-full"},
      {"sslrootcert", OptionType::kString, false,
       "CA file (PEM, relative to the script's folder) the server's certificate must chain to",
       true},
      {"sslcert", OptionType::kString, false,
       "client certificate file (PEM), for a server that asks for one; with sslkey", true},
      {"sslkey", OptionType::kString, false,
       "the client certificate's private key (PEM; libpq wants it mode 0600 or stricter)", true},
      {"connect_timeout", OptionType::kInteger, false, "seconds to wait for a connection (10)"},
      {"read_timeout", OptionType::kInteger, false,
       "seconds a statement may get no data from the server before the run fails (300)"},
      {"application_name", OptionType::kString, false,
       "shown in pg_stat_activity (default \"siphon\")"},
      {"settle", OptionType::kInteger, false,
       "seconds incremental runs hold back when the role cannot see other sessions' "
       "transactions (no pg_read_all_stats; default 5, 0: none)"},
  };
  d.make = Make;
  return d;
}

}  // namespace siphon::postgres
