// Fault (d): the target's disk fills up. The replica lives on a small tmpfs; siphon reports
// the error, the file stays valid, and once there is room again the sync completes.
#include <signal.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class DiskFullFaults : public FaultTest {
 protected:
  void SetUp() override {
    mnt_ = dir_.File("small");
    std::filesystem::create_directories(mnt_);
    // Root can mount a tmpfs; without that privilege the scenario cannot run at all, and a
    // skipped reliability check would read as a passed one.
    if (mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=8m") != 0) {
      FAIL() << "cannot mount a tmpfs on " << mnt_ << ": " << std::strerror(errno)
             << " (the disk-full scenario needs root or CAP_SYS_ADMIN)";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_ && umount2(mnt_.c_str(), MNT_DETACH) != 0) {
      ADD_FAILURE() << "umount " << mnt_ << ": " << std::strerror(errno);
    }
  }
  std::string Replica() const override { return mnt_ + "/replica.db"; }

  std::string mnt_;
  bool mounted_ = false;
};

TEST_F(DiskFullFaults, AFullDiskIsReportedKeepsTheFileValidAndTheSyncResumes) {
  db_.Exec(R"sql(
    CREATE TABLE big (id int8 PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO big SELECT g, repeat(md5(g::text), 4), now() - interval '1 day' + g * interval '1 ms'
      FROM generate_series(1, 100000) g;
    CREATE INDEX ON big (updated_at, id);
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "big" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, every = "1s" })");
  Process p(Argv("run", script), Env());
  const bool reported = WaitUntil(
      [&] {
        return p.Stderr().find("full") != std::string::npos ||
               (TargetCount(Replica(), "big") > 0 &&
                Target("SELECT count(*) FROM _siphon_log WHERE error LIKE '%full%'") != "0");
      },
      std::chrono::seconds(60), std::chrono::milliseconds(100));
  ASSERT_TRUE(reported) << "no 'full' error reported\n" << p.Stderr();
  ASSERT_TRUE(p.Running()) << p.Stderr();
  const int64_t at_full = TargetCount(Replica(), "big");
  EXPECT_LT(at_full, 100000);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  // Pages of 1000 after the first, of 8 (the rows' size not yet known).
  EXPECT_TRUE(at_full == 0 || (at_full - 8) % 1000 == 0)
      << "a page was written in part: " << at_full << " rows";

  // Room again: the next retry (backoff 1 s doubling) completes the sync.
  ASSERT_EQ(mount("tmpfs", mnt_.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0)
      << std::strerror(errno);
  EXPECT_TRUE(WaitUntil([&] { return TargetCount(Replica(), "big") == 100000; },
                        std::chrono::seconds(90), std::chrono::milliseconds(200)))
      << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("recovered"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  TableDiff d =
      ComparePg("big", "id::text, v, " + PgTs("updated_at"), "id, v, " + TargetTs("updated_at"));
  const std::string logged =
      Target("SELECT count(*) FROM _siphon_log WHERE event = 'error' AND error LIKE '%full%'");
  Summary("disk_full", 1, 1, d.source_rows, d.mismatches,
          "rows_at_full=" + std::to_string(at_full) + " full_errors_in_siphon_log=" + logged);
}

}  // namespace
}  // namespace siphon::test
