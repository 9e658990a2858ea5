// Small text and host helpers shared by every module (one copy of each).
#pragma once

#include <string>
#include <string_view>

namespace migvis {

// `s` without leading and trailing blanks (space, tab, CR, LF).
inline std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// This machine's host name ("unknown-host" when it cannot be read).
std::string host_name();

}  // namespace migvis
