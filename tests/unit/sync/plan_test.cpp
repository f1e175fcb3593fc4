#include "runtime/sync/plan.hpp"

#include <gtest/gtest.h>

#include "runtime/base/key_digest.hpp"

namespace siphon {
namespace {

TableSchema Orders() {
  TableSchema s;
  s.qualified_name = "public.orders";
  s.columns = {
      {"id", "bigint", ColumnType::kInteger, OrderKind::kNumber, false},
      {"status", "text", ColumnType::kText, OrderKind::kText, true},
      {"amount", "numeric(12,2)", ColumnType::kText, OrderKind::kNumber, true},
      {"updated_at", "timestamp with time zone", ColumnType::kText, OrderKind::kTime, false},
  };
  s.primary_key = {"id"};
  return s;
}

TableDecl Decl() {
  TableDecl d;
  d.name = "orders";
  d.location = "deploy.lua:7";
  d.from = "public.orders";
  return d;
}

TEST(Plan, FullRefreshPagesByPrimaryKey) {
  auto plan = MakePlan(Decl(), Orders());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_FALSE(plan->incremental);
  EXPECT_EQ(plan->order_by, std::vector<std::string>({"id"}));
  EXPECT_EQ(plan->columns.size(), 4u);
  EXPECT_EQ(plan->target.key, std::vector<std::string>({"id"}));
}

TEST(Plan, CursorThenKeyMakesTheKeysetOrder) {
  TableDecl d = Decl();
  d.cursor = {"updated_at"};
  d.lookback_seconds = 5;
  auto plan = MakePlan(d, Orders());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(plan->incremental);
  EXPECT_EQ(plan->order_by, std::vector<std::string>({"updated_at", "id"}));
  EXPECT_EQ(plan->order_index, std::vector<size_t>({3, 0}));

  PageQuery first = FirstPage(*plan, std::nullopt);
  EXPECT_FALSE(first.after.has_value());
  EXPECT_FALSE(first.lookback_seconds.has_value());  // nothing to look back from yet
  Cursor c = {std::string("2024-01-01T00:00:00Z"), int64_t{7}};
  PageQuery resume = FirstPage(*plan, c);
  EXPECT_EQ(resume.lookback_seconds, 5.0);
  PageQuery next = NextPage(*plan, c);
  EXPECT_FALSE(next.lookback_seconds.has_value());  // only the first page of a run looks back
  EXPECT_EQ(next.after, c);
}

TEST(Plan, ProjectionKeepsKeyAndCursorColumns) {
  TableDecl d = Decl();
  d.columns = {"status"};
  d.cursor = {"updated_at"};
  auto plan = MakePlan(d, Orders());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->columns, std::vector<std::string>({"status", "id", "updated_at"}));
}

TEST(Plan, ErrorsNameTheTableAndColumn) {
  TableDecl d = Decl();
  d.cursor = {"modified"};
  auto plan = MakePlan(d, Orders());
  ASSERT_FALSE(plan.ok());
  // The script names it: a mistake to fix in the script (exit 2), like an unknown field.
  EXPECT_EQ(plan.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(plan.status().message().find("deploy.lua:7"), std::string::npos);
  EXPECT_NE(plan.status().message().find("\"modified\""), std::string::npos);
  // The message lists what the source has, for a typo ("updatedat") or a name in other case.
  EXPECT_NE(plan.status().message().find(
                "cursor column \"modified\" does not exist in the source (its columns: id, "
                "status, amount, updated_at)"),
            std::string::npos)
      << plan.status().message();

  TableSchema no_pk = Orders();
  no_pk.primary_key.clear();
  plan = MakePlan(Decl(), no_pk);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(plan.status().message().find("no primary key"), std::string::npos);

  d = Decl();
  d.lookback_seconds = 3;
  plan = MakePlan(d, Orders());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("lookback needs a cursor"), std::string::npos);
}

TEST(Plan, CursorOfReadsTheOrderColumnsOfARow) {
  TableDecl d = Decl();
  d.cursor = {"updated_at"};
  auto plan = MakePlan(d, Orders());
  ASSERT_TRUE(plan.ok());
  RowBatch b(4);
  b.AddInt(42);
  b.AddText("paid");
  b.AddText("10.00");
  b.AddText("2024-01-01T00:00:00.000001Z");
  Cursor c = CursorOf(*plan, b, 0);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(std::get<std::string>(c[0]), "2024-01-01T00:00:00.000001Z");
  EXPECT_EQ(std::get<int64_t>(c[1]), 42);
  EXPECT_EQ(CursorToJson(c), R"(["2024-01-01T00:00:00.000001Z",42])");
  EXPECT_EQ(CursorFromJson(CursorToJson(c)), c);
}

// Pages of a table without a key keep rows the source holds equal together; a numeric's
// text keeps its scale, so 1.0 and 1.00 must count as one value.
TEST(Plan, SameOrderComparesNumbersAsNumbers) {
  TableDecl d = Decl();
  d.cursor = {"amount", "status"};
  auto plan = MakePlan(d, Orders());
  ASSERT_TRUE(plan.ok());
  auto same = [&](CursorValue amount_a, CursorValue amount_b) {
    return SameOrder(*plan, {amount_a, std::string("x"), int64_t{1}},
                     {amount_b, std::string("x"), int64_t{1}});
  };
  const std::pair<const char*, const char*> equal[] = {
      {"1.0", "1.00"}, {"1", "1.000"}, {"-0.50", "-0.5"}, {"0", "-0.00"},
      {"10", "10."},   {"NaN", "NaN"}, {"1.5", "1.5"},
  };
  for (const auto& [a, b] : equal) EXPECT_TRUE(same(std::string(a), std::string(b))) << a << b;
  const std::pair<const char*, const char*> differ[] = {
      {"1.0", "10"}, {"10", "1"}, {"1.01", "1.1"}, {"-1", "1"}, {"NaN", "Infinity"}, {"0", "x0"},
  };
  for (const auto& [a, b] : differ) EXPECT_FALSE(same(std::string(a), std::string(b))) << a << b;
  EXPECT_TRUE(same(0.0, -0.0));
  EXPECT_FALSE(same(1.0, 2.0));
  EXPECT_FALSE(same(int64_t{1}, std::string("1")));
  EXPECT_TRUE(same(int64_t{1}, 1.0));
  EXPECT_TRUE(same(-2.0, int64_t{-2}));
  EXPECT_FALSE(same(int64_t{1}, 1.5));
  // A text column keeps its bytes: "1.0" and "1.00" are two strings there.
  EXPECT_FALSE(SameOrder(*plan, {std::string("1"), std::string("1.0"), int64_t{1}},
                         {std::string("1"), std::string("1.00"), int64_t{1}}));
}

TEST(Plan, CursorJsonKeepsInt64Extremes) {
  Cursor c = {int64_t{INT64_MIN}, int64_t{INT64_MAX}, std::string("a\"b\\c"), 0.1};
  auto back = CursorFromJson(CursorToJson(c));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, c);
  EXPECT_FALSE(CursorFromJson("{}").has_value());
  EXPECT_FALSE(CursorFromJson("[1,").has_value());
}

// JSON has no infinity or NaN, and its text is UTF-8: such cursor values were stored as null
// or with U+FFFD, another position than the one reached.
TEST(Plan, CursorJsonKeepsRealsThatAreNotFiniteAndTextThatIsNotUtf8) {
  Cursor c = {HUGE_VAL, -HUGE_VAL, std::string("a\x80"), std::string("\xff\x00z", 3),
              std::string("héllo")};
  const std::string json = CursorToJson(c);
  EXPECT_EQ(
      json,
      R"([{"real":"Infinity"},{"real":"-Infinity"},{"text_hex":"6180"},{"text_hex":"ff007a"},"héllo"])");
  auto back = CursorFromJson(json);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, c);
  auto nan = CursorFromJson(CursorToJson(Cursor{std::nan("")}));
  ASSERT_TRUE(nan.has_value());
  EXPECT_TRUE(std::isnan(std::get<double>((*nan)[0])));
  EXPECT_FALSE(CursorFromJson(R"([{"real":"big"}])").has_value());
  EXPECT_FALSE(CursorFromJson(R"([{"text_hex":"6"}])").has_value());
  EXPECT_FALSE(CursorFromJson(R"([{"text_hex":"zz"}])").has_value());
}

// A binary key (a BINARY(16) uuid, a bytea) is a position of its own: bytes, told apart from
// text that happens to hold the same bytes, so the next run binds it as bytes again.
TEST(Plan, CursorJsonKeepsBinaryValuesApartFromText) {
  Cursor c = {Bytes{std::string("\x00\xff\x10", 3)}, Bytes{}, std::string("\x00\xff\x10", 3),
              int64_t{7}};
  const std::string json = CursorToJson(c);
  EXPECT_EQ(json, R"([{"bytes_hex":"00ff10"},{"bytes_hex":""},{"text_hex":"00ff10"},7])");
  auto back = CursorFromJson(json);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, c);
  EXPECT_TRUE(std::holds_alternative<Bytes>((*back)[0]));
  EXPECT_TRUE(std::holds_alternative<std::string>((*back)[2]));
  EXPECT_EQ(CursorFromJson(R"([{"bytes_hex":"00FF"}])"), Cursor{Bytes{std::string("\x00\xff", 2)}});
  EXPECT_FALSE(CursorFromJson(R"([{"bytes_hex":"0"}])").has_value());
  EXPECT_FALSE(CursorFromJson(R"([{"bytes_hex":1}])").has_value());
  // The batch's blob cell is such a value.
  RowBatch batch(1);
  batch.AddBlob(std::string_view("\x01\x02", 2));
  EXPECT_EQ(CursorValueOf(batch, 0, 0), CursorValue(Bytes{"\x01\x02"}));
  // Reconcile hashes it as PostgreSQL prints a bytea.
  EXPECT_EQ(KeyText({Bytes{"\x01\xab"}, std::string("t")}), "\\x01ab\x01t");
}

TEST(Plan, SchemaDiffFindsAddedDroppedAndRetypedColumns) {
  TableSchema before = Orders();
  std::string recorded = SchemaToJson(before);
  TableSchema now = before;
  now.columns.erase(now.columns.begin() + 1);    // status dropped
  now.columns[1].source_type = "numeric(14,4)";  // amount retyped
  now.columns.push_back({"note", "text", ColumnType::kText, OrderKind::kText, true});
  SchemaDiff diff = DiffSchema(recorded, now);
  EXPECT_EQ(diff.added, std::vector<std::string>({"note"}));
  EXPECT_EQ(diff.dropped, std::vector<std::string>({"status"}));
  ASSERT_EQ(diff.retyped.size(), 1u);
  EXPECT_EQ(diff.retyped[0].column, "amount");
  EXPECT_EQ(diff.retyped[0].from, "numeric(12,2)");
  EXPECT_EQ(diff.retyped[0].to, "numeric(14,4)");
  const std::string expected =
      "{\"added\":[\"note\"],\"dropped\":[\"status\"],\"retyped\":[{\"column\":\"amount\","
      "\"from\":\"numeric(12,2)\",\"to\":\"numeric(14,4)\"}]}";
  EXPECT_EQ(diff.ToJson(), expected);
  EXPECT_TRUE(DiffSchema(recorded, before).empty());
  EXPECT_TRUE(DiffSchema("", now).empty());
  EXPECT_TRUE(DiffSchema("not json", now).empty());
}

TEST(Plan, TablesWithAKeyCarryThePassMarkAppendOnlyOnesDoNot) {
  auto full = MakePlan(Decl(), Orders());
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(full->target.pass_marks);
  TableDecl d = Decl();
  d.cursor = {"updated_at"};
  auto inc = MakePlan(d, Orders());
  ASSERT_TRUE(inc.ok());
  EXPECT_TRUE(inc->target.pass_marks);  // a resync sweeps incremental tables too
  d.write = WriteMode::kAppend;
  auto append = MakePlan(d, Orders());
  ASSERT_TRUE(append.ok());
  EXPECT_FALSE(append->target.pass_marks);
}

// A full refresh keyed by columns its source orders as SQLite does (the adapter says so:
// ColumnInfo::stored_order) sweeps each page's key range; by anything else, with a cursor, or
// with a transform (whose rows may carry other keys), it marks passes. The way is noted after
// the cursor columns, so a pass begun one way never resumes the other.
TEST(Plan, OnlyFullRefreshesKeyedInSqlitesOrderWithoutATransformSweepByKeyRange) {
  TableSchema schema = Orders();
  schema.columns[0].stored_order = true;  // id
  auto full = MakePlan(Decl(), schema);
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(full->target.key_range_sweep);
  EXPECT_EQ(full->target.cursor_columns, "[\"id\"] swept by key range");
  struct Identity : RowTransform {
    Result<std::vector<ColumnInfo>> OutputColumns(const std::vector<ColumnInfo>& in) override {
      return in;
    }
    Status Apply(const std::vector<ColumnInfo>&, const RowBatch& in, RowBatch& out,
                 std::vector<Reject>&) override {
      out = in;
      return Status::Ok();
    }
    bool RejectsRows() const override { return false; }
  } identity;
  ASSERT_TRUE(ApplyTransformColumns(*full, identity).ok());
  EXPECT_FALSE(full->target.key_range_sweep);
  EXPECT_EQ(full->target.cursor_columns, "[\"id\"]");

  TableDecl d = Decl();
  d.key = {"id", "updated_at"};  // a timestamp's text is not said to order as its values
  auto mixed = MakePlan(d, schema);
  ASSERT_TRUE(mixed.ok());
  EXPECT_FALSE(mixed->target.key_range_sweep);
  d = Decl();
  d.cursor = {"updated_at"};
  auto inc = MakePlan(d, schema);
  ASSERT_TRUE(inc.ok());
  EXPECT_FALSE(inc->target.key_range_sweep);
  // An INTEGER key its source does not vouch for (a SQLite source's, which may hold text).
  auto unsaid = MakePlan(Decl(), Orders());
  ASSERT_TRUE(unsaid.ok());
  EXPECT_FALSE(unsaid->target.key_range_sweep);
  EXPECT_EQ(unsaid->target.cursor_columns, "[\"id\"]");
}

// A table without a primary key takes its key from a unique index that identifies rows as
// one would: usable, over NOT NULL columns of a type a key can have; of several, the fewest
// columns, then the first name. Those refused say why, and the plan's message lists them.
TEST(Plan, AUniqueIndexOverNotNullColumnsIsTheKeyOfATableWithoutOne) {
  TableSchema s = Orders();
  s.primary_key.clear();
  s.columns.push_back({"sku", "text", ColumnType::kText, OrderKind::kText, false});
  s.columns.push_back({"doc", "jsonb", ColumnType::kText, OrderKind::kOther, false});
  const std::vector<UniqueIndex> indexes = {
      {"orders_status", {"status"}, ""},  // nullable
      {"orders_doc", {"doc"}, ""},        // no order
      {"orders_lower", {}, "indexes an expression"},
      {"orders_sku_at", {"sku", "updated_at"}, ""},  // usable, two columns
      {"orders_z_sku", {"sku"}, ""},                 // usable, one column
      {"orders_m_id", {"id"}, ""},                   // usable, one column, first by name
      {"orders_recent", {"id"}, "is partial (it has a WHERE clause)"},
  };
  TableSchema chosen = s;
  TakeKeyFromUniqueIndex(chosen, indexes);
  EXPECT_EQ(chosen.primary_key, std::vector<std::string>({"id"}));
  EXPECT_EQ(chosen.key_index, "orders_m_id");
  // The order the catalog lists them in does not matter.
  std::vector<UniqueIndex> reversed(indexes.rbegin(), indexes.rend());
  TableSchema again = s;
  TakeKeyFromUniqueIndex(again, reversed);
  EXPECT_EQ(again.key_index, "orders_m_id");
  auto plan = MakePlan(Decl(), chosen);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->target.key, std::vector<std::string>({"id"}));
  EXPECT_EQ(plan->order_by, std::vector<std::string>({"id"}));

  // A primary key stays the key.
  TableSchema with_pk = Orders();
  TakeKeyFromUniqueIndex(with_pk, indexes);
  EXPECT_EQ(with_pk.key_index, "");
  EXPECT_EQ(with_pk.primary_key, std::vector<std::string>({"id"}));

  // None usable: the plan's message says why of each.
  TableSchema none = s;
  TakeKeyFromUniqueIndex(none, {indexes[0], indexes[1], indexes[2], indexes[6]});
  EXPECT_TRUE(none.primary_key.empty());
  auto refused = MakePlan(Decl(), none);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "has no primary key: name the columns that identify a row with key = { … }, "
                "from its NOT NULL columns: \"id\", \"updated_at\", \"sku\"; unique index "
                "\"orders_doc\" has the column \"doc\" of type jsonb, which cannot be a key (it "
                "has no order); unique index \"orders_lower\" indexes an expression; unique "
                "index \"orders_recent\" is partial (it has a WHERE clause); unique index "
                "\"orders_status\" has the nullable column \"status\""),
            std::string::npos)
      << refused.status().message();
}

TEST(Backoff, GrowsExponentiallyWithJitterAndCap) {
  std::mt19937_64 rng(1);
  using std::chrono::milliseconds;
  for (int i = 0; i < 100; ++i) {
    auto a1 = Backoff(1, milliseconds(1000), milliseconds(60000), rng);
    EXPECT_GE(a1.count(), 500);
    EXPECT_LE(a1.count(), 1000);
    auto a4 = Backoff(4, milliseconds(1000), milliseconds(60000), rng);
    EXPECT_GE(a4.count(), 4000);
    EXPECT_LE(a4.count(), 8000);
    auto a40 = Backoff(40, milliseconds(1000), milliseconds(60000), rng);
    EXPECT_GE(a40.count(), 30000);
    EXPECT_LE(a40.count(), 60000);
  }
}

}  // namespace
}  // namespace siphon
