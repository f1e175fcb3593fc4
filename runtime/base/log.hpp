#pragma once
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace siphon {

enum class LogFormat { kText, kJson };

/// Sets the level ("trace".."off") and format of every siphon logger; logs go to stderr.
/// spdlog's default logger (spdlog::warn() and friends) becomes siphon's stderr logger.
/// Returns false for an unknown level.
bool ConfigureLogging(const std::string& level, LogFormat format);

/// The logger for a component or a table ("sync", "target", "table:orders"), made on first use
/// with the configured sink, level and format.
std::shared_ptr<spdlog::logger> Logger(const std::string& name);

}  // namespace siphon
