// Content hashing (SHA-256 through OpenSSL) for job identities and cache keys.
#pragma once

#include <string>
#include <string_view>

#include "common/files.h"
#include "common/status.h"

namespace migvis {

// Lower-case hex SHA-256 of `data` (64 characters).
std::string sha256_hex(std::string_view data);

// Lower-case hex SHA-256 of a file's content, read in 1 MiB blocks (memory
// stays flat for files of many GB). NotFound when missing, IoError on a read error.
Result<std::string> file_sha256(const fs::path& path);

}  // namespace migvis
