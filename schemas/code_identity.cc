#include "schemas/code_identity.h"

#include "migvis_code_fingerprints.h"  // generated: cmake/code_fingerprint.cmake

namespace migvis::schema {

const CodeFingerprints& built_in_code_fingerprints() {
  static const CodeFingerprints k = {MIGVIS_CODE_FINGERPRINT_ROWS};
  return k;
}

std::string code_fingerprint(const std::string& stage) {
  auto it = built_in_code_fingerprints().find(stage);
  return it == built_in_code_fingerprints().end() ? std::string() : it->second;
}

}  // namespace migvis::schema
