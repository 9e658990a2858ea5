#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace migvis {

void init_logging(const std::string& level) {
  static bool once = [] {
    auto logger = spdlog::stderr_color_mt("migvis");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    return true;
  }();
  (void)once;
  std::string lv = level;
  if (lv.empty()) {
    const char* env = std::getenv("MIGVIS_LOG_LEVEL");
    lv = env ? env : "info";
  }
  spdlog::set_level(spdlog::level::from_str(lv));
}

}  // namespace migvis
