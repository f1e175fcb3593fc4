// The siphon command line (DESIGN §3). Exit codes: 0 success, 1 a replication failed,
// 2 bad usage or bad script.
#include <malloc.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "runtime/base/log.hpp"
#include "runtime/cli/commands.hpp"

int main(int argc, char** argv) {
  // Pages of rows are allocated on the loop thread and freed on the writer's, a few MiB at a
  // time. glibc would map the larger ones afresh and give freed heap back to the kernel, so
  // every page was faulted in again (30k page faults in a 1M-row sync, 3.3-3.5k with these).
  // Freed memory is kept for the next page instead; the pipeline bounds how much is in flight.
  // 32 MiB is the largest mmap threshold every 64-bit glibc accepts; a refused setting only costs
  // speed, so the return values are not fatal.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  // A peer that closes a socket siphon is writing to (an admin API client that hangs up
  // mid-answer, a source server going away) is an EPIPE for the code that writes, never a
  // signal that ends the process.
  signal(SIGPIPE, SIG_IGN);
  // libuv's thread pool runs host name lookups and SQLite-source reads: a name server that
  // does not answer holds a thread per name it is asked for, so 4 (libuv's default) is
  // too few to keep the rest going. Read at its first use; a user's own setting wins.
  setenv("UV_THREADPOOL_SIZE", "16", 0);

  CLI::App app{
      "siphon: replicate PostgreSQL, MySQL/MariaDB and SQLite tables into a local SQLite file, "
      "driven by a Lua script",
      "siphon"};
  app.set_version_flag("--version", SIPHON_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand: `siphon run x.lua --log-level
                      // debug`

  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", log_format, "text or json (one object per line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));

  siphon::ScriptOptions script;
  std::vector<std::string> tables;
  std::string replica;
  bool json = false;

  // `check` syncs nothing, so it shows no progress lines to silence: it takes no --quiet.
  auto add_script = [&script](CLI::App* cmd, bool syncs = true) {
    cmd->add_option("SCRIPT", script.script, "the deployment script (.lua)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_flag("--unsafe-lua", script.unsafe_lua,
                  "let the script use os.execute, io, C modules and debug");
    if (syncs) cmd->add_flag("--quiet,-q", script.quiet, "no progress lines for long syncs");
  };
  CLI::App* run = app.add_subcommand("run", "replicate on schedule until stopped");
  add_script(run);
  run->add_option("--http", script.http,
                  "serve the admin API on ADDR:PORT (default host 127.0.0.1; off by default)");
  run->add_option("--http-token-env", script.http_token_env,
                  "environment variable holding the admin API token (default: SIPHON_HTTP_TOKEN)");
  CLI::App* once = app.add_subcommand("once", "sync every table until caught up, then exit");
  add_script(once);
  once->add_option("--table", tables, "only this table (repeatable)");
  CLI::App* resync =
      app.add_subcommand("resync", "pull tables again from the start, ending equal to the source");
  add_script(resync);
  resync->add_option("--table", tables, "the table to resync (repeatable)")->required();
  CLI::App* resume = app.add_subcommand(
      "resume", "sync tables once, accepting the source schema change that paused them");
  add_script(resume);
  resume->add_option("--table", tables, "the table to resume (repeatable)")->required();
  CLI::App* check = app.add_subcommand("check", "validate, connect, reflect and print the plan");
  add_script(check, /*syncs=*/false);
  // The admin API as `run` would serve it, so check refuses what run refuses.
  check->add_option("--http", script.http, "check the admin API as `run --http ADDR:PORT` would");
  check->add_option("--http-token-env", script.http_token_env,
                    "environment variable holding the admin API token, as for `run`");
  CLI::App* status = app.add_subcommand("status", "per-table state read from a replica");
  status->add_option("REPLICA", replica, "the target SQLite file")
      ->required()
      ->check(CLI::ExistingFile);
  status->add_flag("--json", json, "print JSON");
  // The options every command takes are the main command's: each command's help names them,
  // or `siphon run --help` would not say how to turn on debug logs.
  for (CLI::App* cmd : app.get_subcommands({})) {
    cmd->footer(
        "Every command also takes --log-level LEVEL (trace, debug, info, warn, error, critical, "
        "off; default info) and --log-format text|json.");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A word where the command goes ("siphon stauts x.db") is left over, unparsed: name it,
    // rather than the "A subcommand is required" that CLI11 reports first.
    if (dynamic_cast<const CLI::RequiredError*>(&e) && app.get_subcommands().empty() &&
        !app.remaining().empty()) {
      // An option siphon does not know ("siphon --verbose run x.lua") is not a command.
      const std::string first = app.remaining().front();
      if (first.size() > 1 && first[0] == '-') {
        std::cerr << "siphon: unknown option " << first;
      } else {
        std::cerr << "siphon: unknown command \"" << first
                  << "\" (run, once, resync, resume, check or status)";
      }
      std::cerr << "\nRun with --help for more information.\n";
      return 2;
    }
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  siphon::ConfigureLogging(
      log_level, log_format == "json" ? siphon::LogFormat::kJson : siphon::LogFormat::kText);
  script.json_logs = log_format == "json";

  if (*run) return siphon::RunCommand(script);
  if (*once) return siphon::OnceCommand(script, tables);
  if (*resync) return siphon::ResyncCommand(script, tables);
  if (*resume) return siphon::ResumeCommand(script, tables);
  if (*check) return siphon::CheckCommand(script);
  if (*status) return siphon::StatusCommand(replica, json);
  return 2;
}
