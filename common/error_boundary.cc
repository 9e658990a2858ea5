#include "common/error_boundary.h"

#include <cstdio>
#include <filesystem>
#include <new>
#include <string>

#include "common/files.h"
#include "common/status.h"

namespace migvis {
namespace {

int report(std::string_view program, std::string_view prefix, const Status& st) {
  std::string line = std::string(program) + ": error: " + std::string(prefix) + st.message();
  // One line, even when the exception's text had several.
  for (char& c : line)
    if (c == '\n') c = ' ';
  std::fprintf(stderr, "%s\n", line.c_str());
  return exit_code_for(st);
}

}  // namespace

int run_with_error_boundary(std::string_view program, const std::function<int()>& body) {
  constexpr std::string_view kBug = "unexpected failure (a bug; please report it): ";
  try {
    return body();
  } catch (const std::filesystem::filesystem_error& e) {
    return report(program, "", status_from_errno(e.code().value(), e.what()));
  } catch (const std::bad_alloc&) {
    return report(program, "", Status::Internal("out of memory"));
  } catch (const std::exception& e) {
    return report(program, kBug, Status::Internal(e.what()));
  } catch (...) {
    return report(program, kBug, Status::Internal("unknown exception"));
  }
}

}  // namespace migvis
