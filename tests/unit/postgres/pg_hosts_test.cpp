// Which hosts siphon looks up for libpq (off the loop) and the host/hostaddr lists it gives
// libpq after: the list building, without a name server.
#include <gtest/gtest.h>

#include <cstdlib>

#include "adapters/postgres/pg_connection.hpp"

namespace siphon::postgres {
namespace {

PgConnectParams Fields(std::vector<std::pair<std::string, std::string>> keywords) {
  PgConnectParams p;
  p.keywords = std::move(keywords);
  return p;
}

PgConnectParams Dsn(const std::string& dsn) {
  PgConnectParams p;
  p.keywords = {{"dbname", dsn}};
  p.expand_dbname = true;
  return p;
}

std::string Value(const std::vector<std::pair<std::string, std::string>>& keywords,
                  const std::string& key) {
  std::string last = "(none)";
  for (const auto& [k, v] : keywords) {
    if (k == key) last = v;  // libpq keeps the last
  }
  return last;
}

TEST(PgHosts, NamesAreLookedUpSocketsAndAddressesAreNot) {
  PgHosts h =
      PgHostsOf(Fields({{"host", "db.example,10.0.0.1,/run/postgresql,::1"}, {"port", "5432"}}));
  EXPECT_EQ(h.hosts,
            (std::vector<std::string>{"db.example", "10.0.0.1", "/run/postgresql", "::1"}));
  EXPECT_EQ(h.ports, (std::vector<std::string>{"5432"}));
  EXPECT_TRUE(h.needs_lookup);
  EXPECT_FALSE(PgHostsOf(Fields({{"host", "10.0.0.1,/tmp,@abstract"}})).needs_lookup);
  EXPECT_TRUE(PgHostIsName("localhost"));
  EXPECT_FALSE(PgHostIsName("fe80::1"));
  EXPECT_FALSE(PgHostIsName(""));
}

TEST(PgHosts, AConnectionStringOrUriIsReadAsLibpqReadsIt) {
  PgHosts uri = PgHostsOf(Dsn("postgresql://u@a.example:5433,b.example:5434/shop"));
  EXPECT_EQ(uri.hosts, (std::vector<std::string>{"a.example", "b.example"}));
  EXPECT_EQ(uri.ports, (std::vector<std::string>{"5433", "5434"}));
  EXPECT_TRUE(uri.needs_lookup);
  PgHosts kv = PgHostsOf(Dsn("host=db.example port=6432 dbname=shop"));
  EXPECT_EQ(kv.hosts, (std::vector<std::string>{"db.example"}));
  // hostaddr or a service file decide for libpq: nothing for siphon to look up.
  EXPECT_FALSE(PgHostsOf(Dsn("host=db.example hostaddr=10.0.0.5 dbname=shop")).needs_lookup);
  EXPECT_FALSE(PgHostsOf(Dsn("service=reporting")).needs_lookup);
  EXPECT_FALSE(PgHostsOf(Dsn("not a connection string")).needs_lookup);
}

TEST(PgHosts, PghostIsUsedWhenNoHostIsGiven) {
  setenv("PGHOST", "env.example", 1);
  PgHosts h = PgHostsOf(Fields({{"dbname", "shop"}}));
  unsetenv("PGHOST");
  EXPECT_EQ(h.hosts, (std::vector<std::string>{"env.example"}));
  EXPECT_TRUE(h.needs_lookup);
  EXPECT_FALSE(PgHostsOf(Fields({{"dbname", "shop"}})).needs_lookup);  // the default socket
}

TEST(PgHosts, EachAddressBecomesAHostItemTriedInOrder) {
  PgConnectParams params = Dsn("postgresql://u@a.example:1,%2Ftmp:2,b.example:3/shop");
  PgHosts hosts = PgHostsOf(params);
  std::vector<Result<std::vector<std::string>>> found;
  found.emplace_back(std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
  found.emplace_back(std::vector<std::string>{});
  found.emplace_back(Status(ErrorKind::kConnect, "could not resolve host name \"b.example\""));
  auto keywords = PgKeywordsWithAddresses(params, hosts, found);
  ASSERT_TRUE(keywords.ok()) << keywords.status().message();
  EXPECT_EQ(Value(*keywords, "dbname"), "postgresql://u@a.example:1,%2Ftmp:2,b.example:3/shop");
  EXPECT_EQ(Value(*keywords, "host"), "a.example,a.example,/tmp");
  EXPECT_EQ(Value(*keywords, "hostaddr"), "192.0.2.1,2001:db8::1,");
  EXPECT_EQ(Value(*keywords, "port"), "1,1,2");

  // One port for all hosts stays as it was; no name left is the lookup's error.
  PgConnectParams one = Fields({{"host", "c.example"}, {"port", "5432"}});
  std::vector<Result<std::vector<std::string>>> failed;
  failed.emplace_back(Status(ErrorKind::kConnect, "could not resolve host name \"c.example\""));
  auto none = PgKeywordsWithAddresses(one, PgHostsOf(one), failed);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().kind(), ErrorKind::kConnect);
  EXPECT_EQ(none.status().message(), "could not resolve host name \"c.example\"");
  std::vector<Result<std::vector<std::string>>> ok;
  ok.emplace_back(std::vector<std::string>{"192.0.2.7"});
  auto single = PgKeywordsWithAddresses(one, PgHostsOf(one), ok);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(Value(*single, "host"), "c.example");
  EXPECT_EQ(Value(*single, "hostaddr"), "192.0.2.7");
  EXPECT_EQ(Value(*single, "port"), "5432");
}

}  // namespace
}  // namespace siphon::postgres
