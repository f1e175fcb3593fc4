#include "runtime/lua/lua_transform.hpp"

#include <chrono>

#include "runtime/lua/lua_ref.hpp"
#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<ColumnInfo> Columns() {
  ColumnInfo id{"id", "integer", ColumnType::kInteger, OrderKind::kNumber, false};
  ColumnInfo email{"email", "text", ColumnType::kText, OrderKind::kText, true};
  ColumnInfo amount{"amount", "numeric", ColumnType::kReal, OrderKind::kNumber, true};
  return {id, email, amount};
}

RowBatch Rows() {
  RowBatch b(3);
  const char* emails[] = {"Ann@X.org", "BOB@x.org", "test@x.org", "boom@x.org", nullptr};
  for (int i = 0; i < 5; ++i) {
    b.AddInt(i + 1);
    if (emails[i]) {
      b.AddText(emails[i]);
    } else {
      b.AddNull();
    }
    b.AddReal(1.5 * i);
  }
  return b;
}

std::string CellText(const RowBatch& b, size_t r, size_t c) {
  const Cell& cell = b.at(r, c);
  switch (cell.type) {
    case ValueType::kNull:
      return "NULL";
    case ValueType::kInt:
      return "i" + std::to_string(cell.i);
    case ValueType::kReal:
      return "r" + std::to_string(cell.d);
    case ValueType::kText:
      return "t" + std::string(b.bytes(cell));
    case ValueType::kBlob:
      return "b" + std::string(b.bytes(cell));
  }
  return "?";
}

class TransformTest : public LuaTest {
 protected:
  std::shared_ptr<RowTransform> LoadTransform(LuaHost& host, const std::string& fields) {
    Status s = Load(
        host, std::string(kHeader) + "siphon.replicate 'orders' { source = pg, " + fields + " }\n");
    EXPECT_TRUE(s.ok()) << s.message();
    if (!s.ok()) return nullptr;
    Deployment d = host.TakeDeployment();
    EXPECT_TRUE(d.tables[0].transform);
    return d.tables[0].transform;
  }
};

constexpr const char* kLowercase = R"(transform = function(row)
    if row.email == nil then return nil end             -- drop rows without an email
    if row.email:find("^test@") then return nil end    -- drop test rows
    if row.email:find("^boom") then error("cannot handle " .. row.email) end
    row.email = row.email:lower()
    return row
  end)";

TEST_F(TransformTest, LowercasesDropsAndRejects) {
  auto host = NewHost();
  auto t = LoadTransform(*host, kLowercase);
  ASSERT_TRUE(t);
  auto cols = t->OutputColumns(Columns());
  ASSERT_TRUE(cols.ok());
  ASSERT_EQ(cols->size(), 3u);
  RowBatch in = Rows();
  RowBatch out(cols->size());
  std::vector<Reject> rejects;
  Status s = t->Apply(Columns(), in, out, rejects);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(out.rows(), 2u);
  EXPECT_EQ(CellText(out, 0, 0), "i1");
  EXPECT_EQ(CellText(out, 0, 1), "tann@x.org");
  EXPECT_EQ(out.at(0, 2).type, ValueType::kReal);
  EXPECT_EQ(CellText(out, 1, 1), "tbob@x.org");
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].row_json, R"({"amount":4.5,"email":"boom@x.org","id":4})");
  EXPECT_TRUE(Contains(rejects[0].error, "script.lua:6: cannot handle boom@x.org"))
      << rejects[0].error;
  EXPECT_TRUE(Contains(rejects[0].error, "stack traceback:")) << rejects[0].error;

  // A second page reuses the interned names and the row table.
  RowBatch out2(cols->size());
  rejects.clear();
  ASSERT_TRUE(t->Apply(Columns(), in, out2, rejects).ok());
  EXPECT_EQ(out2.rows(), 2u);
  EXPECT_EQ(lua_gettop(host->state()), 0);
}

TEST_F(TransformTest, FailPolicyFailsThePage) {
  auto host = NewHost();
  auto t = LoadTransform(*host, std::string(kLowercase) + ", on_row_error = 'fail'");
  ASSERT_TRUE(t);
  auto cols = t->OutputColumns(Columns());
  RowBatch in = Rows();
  RowBatch out(cols->size());
  std::vector<Reject> rejects;
  Status s = t->Apply(Columns(), in, out, rejects);
  ASSERT_FALSE(s.ok());
  EXPECT_FALSE(s.transient());
  EXPECT_TRUE(Contains(s.message(),
                       "transform of table \"orders\" failed on row "
                       "{\"amount\":4.5,\"email\":\"boom@x.org\",\"id\":4}"))
      << s.message();
  EXPECT_TRUE(Contains(s.message(), "cannot handle boom@x.org"));
  EXPECT_TRUE(rejects.empty());
}

TEST_F(TransformTest, DeclaredColumnsFanOutAndTypes) {
  auto host = NewHost();
  auto t = LoadTransform(*host, R"(
    columns_out = { score = "INTEGER", tag = "TEXT", raw = "BLOB", amount = false },
    transform = function(row)
      if row.id == 1 then
        return { { id = 10, email = "a", score = 1.25, tag = 7, raw = "xy" },
                 { id = 11, email = siphon.null, score = true } }
      end
      if row.id == 2 then row.nope = 1 return row end
      if row.id == 3 then row.score = {} return row end
      if row.id == 5 and row.email == nil then return {} end
      row.score = row.id * 2
      return row
    end)");
  ASSERT_TRUE(t);
  auto cols = t->OutputColumns(Columns());
  ASSERT_TRUE(cols.ok()) << cols.status().message();
  std::vector<std::string> names;
  for (const auto& c : *cols) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"id", "email", "raw", "score", "tag"}));
  RowBatch in = Rows();
  RowBatch out(cols->size());
  std::vector<Reject> rejects;
  ASSERT_TRUE(t->Apply(Columns(), in, out, rejects).ok());
  ASSERT_EQ(out.rows(), 3u);  // 2 fanned out + row 4 ({} for row 5 writes nothing)
  EXPECT_EQ(CellText(out, 0, 0), "i10");
  EXPECT_EQ(CellText(out, 0, 2), "bxy");           // BLOB column: a blob cell
  EXPECT_EQ(out.at(0, 3).type, ValueType::kReal);  // follows the Lua value
  EXPECT_EQ(CellText(out, 0, 4), "i7");            // an integer into TEXT stays an integer
  EXPECT_EQ(CellText(out, 1, 1), "NULL");
  EXPECT_EQ(CellText(out, 1, 3), "i1");  // true → 1
  EXPECT_EQ(CellText(out, 2, 3), "i8");
  ASSERT_EQ(rejects.size(), 2u);
  EXPECT_TRUE(Contains(rejects[0].error, "unknown column 'nope'")) << rejects[0].error;
  EXPECT_TRUE(Contains(rejects[1].error, "column 'score': a table cannot be stored"))
      << rejects[1].error;
}

// A column name longer than Lua interns (40 bytes) may reach the row as another string
// object of the same text: a key built by the script still names its column, in the reused
// row as in a new table.
TEST_F(TransformTest, LongColumnNamesBuiltByTheScriptStillNameTheirColumns) {
  auto host = NewHost();
  const std::string long_name = "customer_lifetime_value_in_the_accounting_currency";
  auto t = LoadTransform(*host, R"(
    transform = function(row)
      local name = "customer_lifetime_value_in_" .. "the_accounting_currency"
      if row.id == 1 then return { id = 1, [name] = "fresh" } end
      row[name] = row.id * 10
      row["customer_lifetime_value_in_" .. "the_accounting_currencY"] = nil
      return row
    end)");
  ASSERT_TRUE(t);
  std::vector<ColumnInfo> columns = Columns();
  columns[1].name = long_name;
  auto cols = t->OutputColumns(columns);
  ASSERT_TRUE(cols.ok()) << cols.status().message();
  RowBatch in = Rows();
  for (int page = 0; page < 2; ++page) {
    RowBatch out(cols->size());
    std::vector<Reject> rejects;
    ASSERT_TRUE(t->Apply(columns, in, out, rejects).ok());
    EXPECT_TRUE(rejects.empty()) << rejects[0].error;
    ASSERT_EQ(out.rows(), 5u);
    EXPECT_EQ(CellText(out, 0, 1), "tfresh");
    EXPECT_EQ(CellText(out, 0, 2), "NULL");  // not in the table it returned
    EXPECT_EQ(CellText(out, 1, 1), "i20");
    EXPECT_EQ(CellText(out, 4, 1), "i50");
    EXPECT_EQ(CellText(out, 4, 2), "r6.000000");
  }
  EXPECT_EQ(lua_gettop(host->state()), 0);
}

// A row the transform returns wrongly is no Lua error, so it has no traceback: the reject
// names the line the transform is written on instead (line 3, after the two header lines).
TEST_F(TransformTest, ARowReturnedWronglyNamesTheTransformsLine) {
  auto host = NewHost();
  auto t = LoadTransform(*host,
                         "transform = function(row)\n"
                         "  if row.id == 1 then row.nope = 1 return row end\n"
                         "  return row.email\n"
                         "end");
  ASSERT_TRUE(t);
  auto cols = t->OutputColumns(Columns());
  ASSERT_TRUE(cols.ok()) << cols.status().message();
  RowBatch in = Rows();
  RowBatch out(cols->size());
  std::vector<Reject> rejects;
  ASSERT_TRUE(t->Apply(Columns(), in, out, rejects).ok());
  ASSERT_EQ(rejects.size(), 4u);  // row 5 has no email: nil, dropped
  EXPECT_TRUE(Contains(rejects[0].error, "unknown column 'nope'")) << rejects[0].error;
  EXPECT_TRUE(Contains(rejects[0].error, "(transform at ")) << rejects[0].error;
  EXPECT_TRUE(Contains(rejects[0].error, "script.lua:3)")) << rejects[0].error;
  EXPECT_TRUE(Contains(rejects[1].error,
                       "the transform must return the row, a list of rows or nil, got a string "
                       "(transform at "))
      << rejects[1].error;
  EXPECT_TRUE(Contains(rejects[1].error, "script.lua:3)")) << rejects[1].error;
}

TEST_F(TransformTest, DeclarationErrors) {
  auto host = NewHost();
  Status s = Load(
      *host, std::string(kHeader) + "siphon.replicate 'orders' { source = pg, transform = 'x' }\n");
  EXPECT_TRUE(Contains(s.message(),
                       "script.lua:3: siphon.replicate \"orders\": field "
                       "'transform' must be a function"))
      << s.message();
  host = NewHost();
  s = Load(*host, std::string(kHeader) +
                      "siphon.replicate 'orders' { source = pg, on = { synched = print } }\n");
  EXPECT_TRUE(Contains(s.message(),
                       "script.lua:3: siphon.replicate \"orders\": field 'on': "
                       "unknown event 'synched'"))
      << s.message();
  host = NewHost();
  s = Load(*host, std::string(kHeader) + "siphon.on('lag', print)\n");
  EXPECT_TRUE(Contains(s.message(), "script.lua:3: siphon.on: unknown event 'lag'")) << s.message();
  host = NewHost();
  s = Load(*host, std::string(kHeader) +
                      "siphon.replicate 'orders' { source = pg, columns_out = { x = 'TEXT' } }\n");
  EXPECT_TRUE(Contains(s.message(), "'columns_out' needs a transform")) << s.message();
  host = NewHost();
  s = Load(*host, std::string(kHeader) +
                      "siphon.replicate 'orders' { source = pg, on_row_error = 'skip' }\n");
  EXPECT_TRUE(Contains(s.message(), "must be one of \"reject\", \"fail\"")) << s.message();
  host = NewHost();
  s = Load(*host,
           std::string(kHeader) + "siphon.replicate 'orders' { source = pg, max_lag = '5m' }\n");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(host->TakeDeployment().tables[0].max_lag, std::chrono::minutes(5));
}

TEST_F(TransformTest, RunawayTransformIsStoppedPerRow) {
  auto host = NewHost();
  auto t = LoadTransform(*host, R"(transform = function(row)
      if row.id >= 2 then while true do end end
      return row
    end)");
  ASSERT_TRUE(t);
  auto cols = t->OutputColumns(Columns());
  RowBatch in = Rows();
  RowBatch out(cols->size());
  std::vector<Reject> rejects;
  auto start = std::chrono::steady_clock::now();
  Status s = t->Apply(Columns(), in, out, rejects);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "transform of table \"orders\" stopped: 3 rows"))
      << s.message();
  EXPECT_TRUE(Contains(s.message(),
                       "instruction budget exceeded in transform of table "
                       "\"orders\""))
      << s.message();
  EXPECT_EQ(rejects.size(), 3u);
  EXPECT_LT(secs, 30.0);
  // The host still works.
  EXPECT_TRUE(Exec(*host, "local x = 1", "after").ok());
}

TEST_F(TransformTest, IdentityCostPerRow) {
  auto host = NewHost();
  auto t = LoadTransform(*host, "transform = function(row) return row end");
  ASSERT_TRUE(t);
  std::vector<ColumnInfo> cols = Columns();
  ASSERT_TRUE(t->OutputColumns(cols).ok());
  RowBatch in(3);
  const size_t n = 5000;
  for (size_t i = 0; i < n; ++i) {
    in.AddInt(static_cast<int64_t>(i));
    in.AddText("someone" + std::to_string(i) + "@example.org");
    in.AddReal(1.25 * static_cast<double>(i));
  }
  const int pages = 40;
  auto start = std::chrono::steady_clock::now();
  for (int p = 0; p < pages; ++p) {
    RowBatch out(3);
    std::vector<Reject> rejects;
    ASSERT_TRUE(t->Apply(cols, in, out, rejects).ok());
    ASSERT_EQ(out.rows(), n);
  }
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(n * pages);
  std::printf("identity transform: %.3f us/row (3 columns)\n", us);
  RecordProperty("identity_us_per_row", std::to_string(us));
}

TEST_F(TransformTest, TransformOutlivingTheHostFailsCleanly) {
  auto host = NewHost();
  auto t = LoadTransform(*host, "transform = function(row) return row end");
  ASSERT_TRUE(t);
  host.reset();
  RowBatch in = Rows();
  RowBatch out(3);
  std::vector<Reject> rejects;
  EXPECT_FALSE(t->Apply(Columns(), in, out, rejects).ok());
  t.reset();
  EXPECT_EQ(LuaRef::LiveCount(), 0);
}

}  // namespace
}  // namespace siphon::testing
