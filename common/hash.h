// Content hashing (SHA-256 through OpenSSL) for job identities and cache keys.
#pragma once

#include <cstdint>
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

// splitmix64 (Steele, Lea and Flood 2014): a fixed, well-mixed 64-bit hash,
// for seeds and orders that must not depend on a library's RNG.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace migvis
