// The error boundary of both programs' main(): whatever escapes a command or a
// job (a std::filesystem error, a JSON type error, bad_alloc, a LibTorch
// c10::Error) ends as one line on stderr and a deliberate exit code instead of
// std::terminate. Library code still returns Status; this only catches what
// slipped through.
#pragma once

#include <functional>
#include <string_view>

namespace migvis {

// Runs `body` and returns its exit code. An escaping exception is printed as
// "<program>: error: <message>" and mapped to an exit code:
//   std::filesystem::filesystem_error -> by its errno class (common/files.h:
//                                        73 permission, 74 I/O, 75 temporary, 66 missing)
//   std::bad_alloc                    -> 70 ("out of memory")
//   any other exception               -> 70 (a bug: the message says so)
int run_with_error_boundary(std::string_view program, const std::function<int()>& body);

}  // namespace migvis
