#pragma once
#include <string>
#include <vector>

namespace siphon {

/// Options shared by the commands that load a script.
struct ScriptOptions {
  std::string script;
  bool unsafe_lua = false;
  bool quiet = false;          ///< no progress lines
  bool json_logs = false;      ///< --log-format json: progress as log lines, never redrawn
  std::string http;            ///< `run --http ADDR:PORT`; empty: no admin API
  std::string http_token_env;  ///< environment variable holding the API token
};

/// `siphon run`: replicate on schedule until SIGINT/SIGTERM. Returns the exit code.
int RunCommand(const ScriptOptions& options);
/// `siphon once`: every table (or the named ones) until caught up, then exit.
int OnceCommand(const ScriptOptions& options, const std::vector<std::string>& tables);
/// `siphon check`: validate, connect, reflect, print the plan; writes nothing.
int CheckCommand(const ScriptOptions& options);
/// `siphon resync`: forget the named tables' cursors, pull them again whole, and sweep the
/// rows the source no longer has; then exit like `once`.
int ResyncCommand(const ScriptOptions& options, const std::vector<std::string>& tables);
/// `siphon resume`: the named tables once, accepting the source schema change that paused
/// them (on_schema_change = "pause"), as POST /tables/NAME/resume does; then exit like `once`.
int ResumeCommand(const ScriptOptions& options, const std::vector<std::string>& tables);
/// `siphon status`: per-table state read from the target file.
int StatusCommand(const std::string& replica, bool json);

}  // namespace siphon
