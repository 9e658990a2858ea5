// Content hashing (SHA-256 through OpenSSL) for job identities and cache keys.
#pragma once

#include <string>
#include <string_view>

namespace migvis {

// Lower-case hex SHA-256 of `data` (64 characters).
std::string sha256_hex(std::string_view data);

}  // namespace migvis
