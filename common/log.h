// Logging: spdlog to stderr (stdout belongs to command output). Library code
// logs through these helpers and never prints to stdout.
#pragma once

#include <spdlog/spdlog.h>

namespace migvis {

// Sets the global level from "debug", "info", "warn", "error"; also honours
// MIGVIS_LOG_LEVEL from the environment when `level` is empty.
void init_logging(const std::string& level = "");

}  // namespace migvis

#define MIGVIS_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define MIGVIS_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define MIGVIS_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define MIGVIS_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
