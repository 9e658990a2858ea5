#include "common/strings.h"

#include <unistd.h>

namespace migvis {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

}  // namespace migvis
